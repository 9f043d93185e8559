//! Drawing a config as HTML from its schema.

use std::cell::{Cell, RefCell};
use std::fmt::Write;

use ferry_connectors::describe::{Description, SecretKind};
use serde_json::Value;

use super::{
    Errors, FormContext, RemoteFields, input_id, non_null, ordered, sections, types, value_at,
    widget,
};

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Help text as one paragraph (doc comments wrap their lines), with `code` spans.
fn help_html(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for (i, part) in joined.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

fn title_of(schema: &Value, fallback: &str) -> String {
    schema
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let mut s = fallback.replace('_', " ");
            if let Some(first) = s.get(0..1) {
                let up = first.to_uppercase();
                s.replace_range(0..1, &up);
            }
            s
        })
}

fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Draws one kind's config form.
pub struct Renderer<'a> {
    description: &'a Description,
    ctx: &'a FormContext,
    errors: &'a Errors,
    /// The values shown: the config, with the schema's defaults where it has no value.
    config: Value,
    /// Whether the first field with an error has been drawn (it gets the focus).
    focused: Cell<bool>,
    /// The error keys drawn next to a field, in the form's order, with the field's label.
    shown: RefCell<Vec<(String, String)>>,
    /// Whether the form reloads its data mapping when the credentials change.
    reloads_mapping: bool,
}

impl<'a> Renderer<'a> {
    /// A renderer of `config` (values to show) with `errors` beside their fields.
    pub fn new(
        description: &'a Description,
        ctx: &'a FormContext,
        errors: &'a Errors,
        config: &'a Value,
    ) -> Self {
        Renderer {
            description,
            ctx,
            errors,
            config: super::with_defaults(&description.config_schema, config),
            // The name and description come first, above the config.
            focused: Cell::new(errors.has("name") || errors.has("description")),
            shown: RefCell::new(Vec::new()),
            reloads_mapping: super::field_with_widget(description, "data_mapping").is_some(),
        }
    }

    /// Whether the first error was drawn already; marks it drawn.
    fn take_focus(&self, key: &str) -> bool {
        if self.errors.has(key) && !self.focused.get() {
            self.focused.set(true);
            true
        } else {
            false
        }
    }

    /// The error lines of `key`, whose input people know as `label` (and marks them shown).
    fn error_html(&self, key: &str, label: &str) -> String {
        let list = self.errors.of(key);
        if list.is_empty() {
            return String::new();
        }
        {
            let mut shown = self.shown.borrow_mut();
            if !shown.iter().any(|(k, _)| k == key) {
                shown.push((key.to_string(), label.to_string()));
            }
        }
        let mut out = format!("<div class=\"field-error\" id=\"{}-error\">", input_id(key));
        for m in list {
            let _ = write!(out, "<p>{}</p>", esc(m));
        }
        out.push_str("</div>");
        out
    }

    /// aria attributes of an input with help and errors.
    fn aria(&self, key: &str, has_help: bool) -> String {
        let id = input_id(key);
        let mut described = Vec::new();
        if self.errors.has(key) {
            described.push(format!("{id}-error"));
        }
        if has_help {
            described.push(format!("{id}-hint"));
        }
        let mut out = String::new();
        if !described.is_empty() {
            let _ = write!(out, " aria-describedby=\"{}\"", described.join(" "));
        }
        if self.errors.has(key) {
            out.push_str(" aria-invalid=\"true\"");
            if self.take_focus(key) {
                out.push_str(" autofocus");
            }
        }
        out
    }

    fn hint(&self, key: &str, schema: &Value) -> String {
        match schema.get("description").and_then(Value::as_str) {
            Some(h) if !h.is_empty() => format!(
                "<span class=\"hint\" id=\"{}-hint\">{}</span>",
                input_id(key),
                help_html(h)
            ),
            _ => String::new(),
        }
    }

    /// The whole config part of the form: its cards.
    pub fn render(&self) -> String {
        let schema = &self.description.config_schema;
        let mut out = String::new();
        for (i, (title, fields)) in sections(schema, !self.description.secrets.is_empty())
            .into_iter()
            .enumerate()
        {
            let _ = write!(
                out,
                "<fieldset class=\"card\" id=\"section-{}\"><legend>{}</legend>",
                i + 1,
                esc(&title)
            );
            let props = schema.get("properties").and_then(Value::as_object);
            let single_object = match fields.as_slice() {
                [only] => props
                    .and_then(|p| p.get(only))
                    .map(non_null)
                    .filter(|s| types(s).0 == ["object"] && widget(s).is_none()),
                _ => None,
            };
            if let (Some(obj), [only]) = (single_object, fields.as_slice()) {
                // One object: its fields directly in the card.
                let name = format!("config.{only}");
                if let Some(h) = obj.get("description").and_then(Value::as_str) {
                    let _ = write!(out, "<p class=\"hint\">{}</p>", help_html(h));
                }
                out.push_str(&self.error_html(&name, &title));
                out.push_str(&self.children(&obj, &name));
            } else {
                for f in &fields {
                    out.push_str(&self.place(f, props.and_then(|p| p.get(f)), "config"));
                }
            }
            out.push_str("</fieldset>");
        }
        out
    }

    /// A field, or an `@…` place, under `parent`.
    fn place(&self, name: &str, schema: Option<&Value>, parent: &str) -> String {
        match name {
            "@secrets" => self.secrets(),
            "@test" => self.test_button(),
            _ => match schema {
                Some(s) => self.field(s, &format!("{parent}.{name}"), name),
                None => String::new(),
            },
        }
    }

    fn children(&self, schema: &Value, name: &str) -> String {
        let props = schema.get("properties").and_then(Value::as_object);
        let mut out = String::new();
        for key in ordered(schema) {
            out.push_str(&self.place(&key, props.and_then(|p| p.get(&key)), name));
        }
        out
    }

    /// The errors for the form's summary, after [`Renderer::render`]: those drawn beside a
    /// field in the form's order, as (key, the field's label, message), then the others
    /// (no label: they belong to no one field).
    pub fn summary(&self) -> Vec<(String, Option<String>, String)> {
        let shown = self.shown.borrow();
        let mut out = Vec::new();
        for (key, label) in shown.iter() {
            for m in self.errors.of(key) {
                out.push((key.clone(), Some(label.clone()), m.clone()));
            }
        }
        for (key, m) in self.errors.all() {
            if !shown.iter().any(|(k, _)| k == key) {
                out.push((key.clone(), None, m.clone()));
            }
        }
        out
    }

    /// One field.
    fn field(&self, schema: &Value, name: &str, key: &str) -> String {
        let schema = non_null(schema);
        let (kinds, nullable) = types(&schema);
        let kind = kinds.first().copied().unwrap_or("string");
        let title = title_of(&schema, key);
        let value = value_at(&self.config, name);
        if let Some(w) = widget(&schema) {
            return self.widget(w, &schema, name, &title, value);
        }
        let id = input_id(name);
        match kind {
            "object" => format!(
                "<fieldset class=\"group\" id=\"{id}\"><legend>{}</legend>{}{}{}</fieldset>",
                esc(&title),
                schema
                    .get("description")
                    .and_then(Value::as_str)
                    .map(|h| format!("<p class=\"hint\">{}</p>", help_html(h)))
                    .unwrap_or_default(),
                self.error_html(name, &title),
                self.children(&schema, name)
            ),
            "boolean" if nullable => {
                let current = value.and_then(Value::as_bool);
                let opt = |v: &str, label: &str, selected: bool| {
                    format!(
                        "<option value=\"{v}\"{}>{label}</option>",
                        if selected { " selected" } else { "" }
                    )
                };
                format!(
                    "<div class=\"form-row\"><label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{name}\"{}>{}{}{}</select>{}{}</div>",
                    esc(&title),
                    self.aria(name, schema.get("description").is_some()),
                    opt("", "Default", current.is_none()),
                    opt("true", "On", current == Some(true)),
                    opt("false", "Off", current == Some(false)),
                    self.hint(name, &schema),
                    self.error_html(name, &title),
                )
            }
            "boolean" => format!(
                "<div class=\"form-row checkbox-row\"><input id=\"{id}\" name=\"{name}\" type=\"checkbox\"{}{}><label for=\"{id}\">{}</label>{}{}</div>",
                if value.and_then(Value::as_bool).unwrap_or(false) {
                    " checked"
                } else {
                    ""
                },
                self.aria(name, schema.get("description").is_some()),
                esc(&title),
                self.hint(name, &schema),
                self.error_html(name, &title),
            ),
            "array" => self.list(&schema, name, &title, value),
            _ => {
                let text = self
                    .ctx
                    .raw
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| text_of(value));
                let control = if let Some(options) = schema.get("enum").and_then(Value::as_array) {
                    let labels = schema.get("x-ferry-labels");
                    let mut opts = String::new();
                    if nullable {
                        opts.push_str("<option value=\"\">None</option>");
                    }
                    for o in options.iter().filter_map(Value::as_str) {
                        let label = labels
                            .and_then(|l| l.get(o))
                            .and_then(Value::as_str)
                            .unwrap_or(o);
                        let _ = write!(
                            opts,
                            "<option value=\"{}\"{}>{}</option>",
                            esc(o),
                            if o == text { " selected" } else { "" },
                            esc(label)
                        );
                    }
                    format!(
                        "<select id=\"{id}\" name=\"{name}\"{}>{opts}</select>",
                        self.aria(name, schema.get("description").is_some())
                    )
                } else {
                    let numeric = matches!(kind, "integer" | "number");
                    format!(
                        "<input id=\"{id}\" name=\"{name}\" type=\"text\"{} autocomplete=\"off\" value=\"{}\"{}>",
                        if numeric {
                            " inputmode=\"numeric\""
                        } else {
                            ""
                        },
                        esc(&text),
                        self.aria(name, schema.get("description").is_some())
                    )
                };
                format!(
                    "<div class=\"form-row\"><label for=\"{id}\">{}</label>{control}{}{}</div>",
                    esc(&title),
                    self.hint(name, &schema),
                    self.error_html(name, &title),
                )
            }
        }
    }

    /// A list: checkboxes for an enumeration, else one item per line.
    fn list(&self, schema: &Value, name: &str, title: &str, value: Option<&Value>) -> String {
        let id = input_id(name);
        let items = non_null(schema.get("items").unwrap_or(&Value::Null));
        let chosen: Vec<&Value> = value
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if let Some(options) = items.get("enum").and_then(Value::as_array) {
            let labels = schema.get("x-ferry-labels");
            let mut boxes = String::new();
            let focus = self.take_focus(name);
            for (i, o) in options.iter().filter_map(Value::as_str).enumerate() {
                let label = labels
                    .and_then(|l| l.get(o))
                    .and_then(Value::as_str)
                    .unwrap_or(o);
                let checked = chosen.iter().any(|c| c.as_str() == Some(o));
                let _ = write!(
                    boxes,
                    "<label class=\"inline\"><input type=\"checkbox\" name=\"{name}\" value=\"{}\"{}{}> {}</label>",
                    esc(o),
                    if checked { " checked" } else { "" },
                    if focus && i == 0 { " autofocus" } else { "" },
                    esc(label)
                );
            }
            return self.group(name, title, schema, &boxes);
        }
        // Lists of strings and numbers are one per line; lists of anything else are JSON, as
        // the form reads them back.
        let scalar_items = matches!(
            items.get("type").and_then(Value::as_str),
            Some("string" | "integer" | "number") | None
        ) && items.get("properties").is_none()
            && items.get("$ref").is_none();
        let text = self.ctx.raw.get(name).cloned().unwrap_or_else(|| {
            if scalar_items {
                chosen
                    .iter()
                    .map(|v| text_of(Some(v)))
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                serde_json::to_string_pretty(&Value::Array(
                    chosen.iter().map(|v| (*v).clone()).collect(),
                ))
                .unwrap_or_default()
            }
        });
        format!(
            "<div class=\"form-row\"><label for=\"{id}\">{}</label><textarea id=\"{id}\" name=\"{name}\" rows=\"3\"{}>{}</textarea>{}{}</div>",
            esc(title),
            self.aria(name, true),
            esc(&text),
            format_args!(
                "<span class=\"hint\" id=\"{id}-hint\">{} {}</span>",
                schema
                    .get("description")
                    .and_then(Value::as_str)
                    .map(help_html)
                    .unwrap_or_default(),
                if scalar_items {
                    "One per line."
                } else {
                    "A JSON list."
                }
            ),
            self.error_html(name, title),
        )
    }

    /// A group of inputs under one legend, with help and errors.
    fn group(&self, name: &str, title: &str, schema: &Value, inner: &str) -> String {
        let id = input_id(name);
        format!(
            "<fieldset class=\"group\" id=\"{id}\"{}><legend>{}</legend>{}<div class=\"checkbox-grid\">{inner}</div>{}</fieldset>",
            if self.errors.has(name) {
                " aria-invalid=\"true\""
            } else {
                ""
            },
            esc(title),
            self.hint(name, schema),
            self.error_html(name, title),
        )
    }

    fn widget(
        &self,
        w: &str,
        schema: &Value,
        name: &str,
        title: &str,
        value: Option<&Value>,
    ) -> String {
        let id = input_id(name);
        match w {
            "schedule_blocks" => {
                let chosen: Vec<i64> = value
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default();
                let focus = self.take_focus(name);
                let mut boxes = String::new();
                for b in 0u8..8 {
                    let _ = write!(
                        boxes,
                        "<label class=\"inline\"><input type=\"checkbox\" name=\"{name}\" value=\"{b}\"{}{}> {}</label>",
                        if chosen.contains(&i64::from(b)) {
                            " checked"
                        } else {
                            ""
                        },
                        if focus && b == 0 { " autofocus" } else { "" },
                        ferry_core::schedule::block_label(b)
                    );
                }
                self.group(name, title, schema, &boxes)
            }
            "contact_fields" => {
                let chosen: Vec<String> = value
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|v| text_of(Some(v))).collect())
                    .unwrap_or_default();
                let mut options: Vec<(String, String)> = self.ctx.field_options.clone();
                options.push(("archived".into(), "Archived".into()));
                // The chosen fields first, in their order (the columns' order), then the rest.
                let mut ordered: Vec<(String, String, bool)> = chosen
                    .iter()
                    .map(|c| {
                        let label = options
                            .iter()
                            .find(|(v, _)| v == c)
                            .map_or_else(|| c.clone(), |(_, l)| l.clone());
                        (c.clone(), label, true)
                    })
                    .collect();
                for (v, l) in options {
                    if !chosen.contains(&v) {
                        ordered.push((v, l, false));
                    }
                }
                let focus = self.take_focus(name);
                let mut boxes = String::new();
                for (i, (v, l, checked)) in ordered.iter().enumerate() {
                    let _ = write!(
                        boxes,
                        "<label class=\"inline\"><input type=\"checkbox\" name=\"{name}\" value=\"{}\"{}{}> {} <code>{}</code></label>",
                        esc(v),
                        if *checked { " checked" } else { "" },
                        if focus && i == 0 { " autofocus" } else { "" },
                        esc(l),
                        esc(v)
                    );
                }
                self.group(name, title, schema, &boxes)
            }
            "opt_in_path" => {
                let current = value.and_then(Value::as_i64);
                let mut opts = format!(
                    "<option value=\"\"{}>None: no welcome message</option>",
                    if current.is_none() { " selected" } else { "" }
                );
                let mut known = false;
                for (pid, label) in &self.ctx.opt_in_paths {
                    known |= current == Some(*pid);
                    let _ = write!(
                        opts,
                        "<option value=\"{pid}\"{}>{}</option>",
                        if current == Some(*pid) {
                            " selected"
                        } else {
                            ""
                        },
                        esc(label)
                    );
                }
                if let (Some(c), false) = (current, known) {
                    let _ = write!(
                        opts,
                        "<option value=\"{c}\" selected>Opt-in path #{c} (no longer exists)</option>"
                    );
                }
                format!(
                    "<div class=\"form-row\"><label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{name}\"{}{}>{opts}</select><span class=\"hint\">Manage the paths and their welcome messages in <a href=\"/settings/opt-in-paths\">Settings → Opt-in paths</a>.</span>{}{}</div>",
                    esc(title),
                    self.aria(name, schema.get("description").is_some()),
                    if self.take_focus(name) {
                        " autofocus"
                    } else {
                        ""
                    },
                    self.hint(name, schema),
                    self.error_html(name, title),
                )
            }
            "filter_rows" => self.filter_rows(schema, name, title, value),
            "data_mapping" => self.data_mapping(schema, name, title, value),
            "template" => {
                let text = text_of(value);
                let mut list = String::new();
                if let Some(ps) = schema.get("x-ferry-placeholders").and_then(Value::as_array) {
                    list.push_str("<div class=\"placeholders\" id=\"placeholders\"><p class=\"hint\">Placeholders:</p><dl class=\"details\">");
                    for p in ps {
                        let _ = write!(
                            list,
                            "<dt><code>{}</code></dt><dd>{}</dd>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["description"].as_str().unwrap_or(""))
                        );
                    }
                    list.push_str("</dl></div>");
                }
                format!(
                    "<div class=\"form-row\"><label for=\"{id}\">{}</label><textarea id=\"{id}\" name=\"{name}\" rows=\"3\"{}>{}</textarea>{}{}{list}</div>",
                    esc(title),
                    self.aria(name, schema.get("description").is_some()),
                    esc(&text),
                    self.hint(name, schema),
                    self.error_html(name, title),
                )
            }
            "oauth_account" => {
                let current = value.and_then(Value::as_i64);
                let mut opts = String::from("<option value=\"\">No account</option>");
                let mut link = String::new();
                if let Some(o) = &self.ctx.oauth {
                    opts = "<option value=\"\">No account: use the access token below</option>"
                        .to_string();
                    let mut known = false;
                    for (aid, label) in &o.accounts {
                        known |= current == Some(*aid);
                        let _ = write!(
                            opts,
                            "<option value=\"{aid}\"{}>{}</option>",
                            if current == Some(*aid) {
                                " selected"
                            } else {
                                ""
                            },
                            esc(label)
                        );
                    }
                    if let (Some(c), false) = (current, known) {
                        let _ = write!(
                            opts,
                            "<option value=\"{c}\" selected>Account #{c} (no longer connected)</option>"
                        );
                    }
                    link = match &o.start_url {
                        Some(url) => format!(
                            "<span class=\"hint\">Select a previously used account, or <a href=\"{}\" data-oauth-popup id=\"connect-account\">add a new account</a> ({} opens in a pop-up to log in). <span id=\"oauth-status\" aria-live=\"polite\"></span></span>",
                            esc(url),
                            esc(&o.name)
                        ),
                        None => format!(
                            "<span class=\"hint\" id=\"oauth-setup\">Connecting a {} account through OAuth is not set up on this server: {}</span>",
                            esc(&o.name),
                            esc(&o.setup_hint)
                        ),
                    };
                }
                format!(
                    "<div class=\"form-row\"><label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{name}\" data-oauth-accounts{}{}>{opts}</select>{link}{}{}</div>",
                    esc(title),
                    self.reload_attrs(),
                    self.aria(name, schema.get("description").is_some()),
                    self.hint(name, schema),
                    self.error_html(name, title),
                )
            }
            _ => String::new(),
        }
    }

    /// htmx attributes that reload the data mapping when a credential changes.
    fn reload_attrs(&self) -> String {
        match super::field_with_widget(self.description, "data_mapping") {
            Some((name, _)) if self.reloads_mapping => format!(
                " hx-post=\"/settings/integrations/remote-fields\" hx-include=\"#integration-form\" hx-target=\"#{}\" hx-swap=\"outerHTML\" hx-trigger=\"change\"",
                input_id(&name)
            ),
            _ => String::new(),
        }
    }

    fn field_select(&self, name: &str, id: &str, current: &str, label: &str) -> String {
        let mut opts = String::from("<option value=\"\">Choose a field</option>");
        let mut known = current.is_empty();
        for (v, l) in &self.ctx.field_options {
            known |= v == current;
            let _ = write!(
                opts,
                "<option value=\"{}\"{}>{}</option>",
                esc(v),
                if v == current { " selected" } else { "" },
                esc(l)
            );
        }
        if !known {
            let _ = write!(
                opts,
                "<option value=\"{}\" selected>{}</option>",
                esc(current),
                esc(current)
            );
        }
        format!(
            "<label class=\"visually-hidden\" for=\"{id}\">{}</label><select id=\"{id}\" name=\"{name}\">{opts}</select>",
            esc(label)
        )
    }

    fn filter_rows(
        &self,
        schema: &Value,
        name: &str,
        title: &str,
        value: Option<&Value>,
    ) -> String {
        let id = input_id(name);
        let rows: Vec<(String, String)> = value
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| {
                        let values: Vec<String> = r["values"]
                            .as_array()
                            .map(|v| v.iter().map(|x| text_of(Some(x))).collect())
                            .unwrap_or_default();
                        (text_of(r.get("field")), values.join(", "))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let row = |i: &str, field: &str, values: &str| {
            format!(
                "<tr data-row><td>{}</td><td><label class=\"visually-hidden\" for=\"{id}-values-{i}\">Values</label><input id=\"{id}-values-{i}\" name=\"{name}.values\" type=\"text\" value=\"{}\" placeholder=\"Comma-separated values\"></td><td><button type=\"button\" class=\"btn btn-sm\" data-remove-row aria-label=\"Remove this filter\" title=\"Remove\">{}</button></td></tr>",
                self.field_select(
                    &format!("{name}.field"),
                    &format!("{id}-field-{i}"),
                    field,
                    "Field"
                ),
                esc(values),
                crate::ui::icons::TRASH
            )
        };
        let mut body = String::new();
        for (i, (f, v)) in rows.iter().enumerate() {
            body.push_str(&row(&i.to_string(), f, v));
        }
        if rows.is_empty() {
            body.push_str(&row("0", "", ""));
        }
        let focus = if self.take_focus(name) {
            " autofocus"
        } else {
            ""
        };
        format!(
            "<fieldset class=\"group\" id=\"{id}\"{}><legend>{}</legend>{}{}<table class=\"data rows\"><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Values</th><th scope=\"col\"><span class=\"visually-hidden\">Remove</span></th></tr></thead><tbody id=\"{id}-rows\">{body}</tbody></table><template id=\"{id}-template\">{}</template><button type=\"button\" class=\"btn btn-sm\" id=\"{id}-add\" data-add-row=\"{id}\"{focus}>Add a filter</button></fieldset>",
            if self.errors.has(name) {
                " aria-invalid=\"true\""
            } else {
                ""
            },
            esc(title),
            self.hint(name, schema),
            self.error_html(name, title),
            row("new", "", ""),
        )
    }

    fn data_mapping(
        &self,
        schema: &Value,
        name: &str,
        title: &str,
        value: Option<&Value>,
    ) -> String {
        let id = input_id(name);
        let fixed = schema.get("x-ferry-fixed");
        let is_fixed = |l: &str, r: &str| {
            fixed.is_some_and(|f| f["local"].as_str() == Some(l) && f["remote"].as_str() == Some(r))
        };
        let rows: Vec<(String, String)> = value
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| (text_of(m.get("local")), text_of(m.get("remote"))))
                    .filter(|(l, r)| !is_fixed(l, r))
                    .collect()
            })
            .unwrap_or_default();
        let (props, why) = match &self.ctx.remote {
            Some(RemoteFields::Listed(p)) => (p.clone(), None),
            Some(RemoteFields::Unavailable(w)) => (Vec::new(), Some(w.clone())),
            None => (Vec::new(), None),
        };
        let remote_select = |i: &str, current: &str| {
            let mut opts = String::from("<option value=\"\">Choose a property</option>");
            let mut known = current.is_empty();
            for (n, l) in &props {
                known |= n == current;
                let _ = write!(
                    opts,
                    "<option value=\"{}\"{}>{} ({})</option>",
                    esc(n),
                    if n == current { " selected" } else { "" },
                    esc(l),
                    esc(n)
                );
            }
            if !known {
                let _ = write!(
                    opts,
                    "<option value=\"{}\" selected>{}</option>",
                    esc(current),
                    esc(current)
                );
            }
            format!(
                "<label class=\"visually-hidden\" for=\"{id}-remote-{i}\">Remote property</label><select id=\"{id}-remote-{i}\" name=\"{name}.remote\">{opts}</select>"
            )
        };
        let row = |i: &str, l: &str, r: &str| {
            format!(
                "<tr data-row><td>{}</td><td>{}</td><td><button type=\"button\" class=\"btn btn-sm\" data-remove-row aria-label=\"Remove this mapping\" title=\"Remove\">{}</button></td></tr>",
                self.field_select(
                    &format!("{name}.local"),
                    &format!("{id}-local-{i}"),
                    l,
                    "Ferry field"
                ),
                remote_select(i, r),
                crate::ui::icons::TRASH
            )
        };
        let mut body = String::new();
        if let Some(f) = fixed {
            let local = f["local"].as_str().unwrap_or("");
            let local_label = self
                .ctx
                .field_options
                .iter()
                .find(|(v, _)| v == local)
                .map_or(local, |(_, l)| l.as_str());
            let _ = write!(
                body,
                "<tr class=\"fixed\"><td>{}</td><td>{} <code>{}</code></td><td><span class=\"muted small\">always mapped</span></td></tr>",
                esc(local_label),
                esc(f["label"].as_str().unwrap_or("")),
                esc(f["remote"].as_str().unwrap_or(""))
            );
        }
        for (i, (l, r)) in rows.iter().enumerate() {
            body.push_str(&row(&i.to_string(), l, r));
        }
        let focus = if self.take_focus(name) {
            " autofocus"
        } else {
            ""
        };
        format!(
            "<fieldset class=\"group\" id=\"{id}\"{}><legend>{}</legend>{}{}{}<table class=\"data mapping\"><thead><tr><th scope=\"col\">Ferry field</th><th scope=\"col\">{} property</th><th scope=\"col\"><span class=\"visually-hidden\">Remove</span></th></tr></thead><tbody id=\"{id}-rows\">{body}</tbody></table><template id=\"{id}-template\">{}</template><button type=\"button\" class=\"btn btn-sm\" id=\"{id}-add\" data-add-row=\"{id}\"{focus}>Add a mapping</button></fieldset>",
            if self.errors.has(name) {
                " aria-invalid=\"true\""
            } else {
                ""
            },
            esc(title),
            why.map(|w| format!(
                "<div class=\"alert alert-warn\" role=\"status\" id=\"properties-error\">The {} properties could not be listed: {}</div>",
                esc(self.description.platform.name),
                esc(&w)
            ))
            .unwrap_or_default(),
            self.hint(name, schema),
            self.error_html(name, title),
            esc(self.description.platform.name),
            row("new", "", ""),
        )
    }

    /// The kind's secrets: write-only inputs that say whether each is set.
    fn secrets(&self) -> String {
        let mut out = String::new();
        if !self.description.secrets.is_empty() {
            out.push_str("<p class=\"hint\">Secrets are write-only: Ferry shows that one is set, never its value; leave a field empty to keep what is saved.</p>");
            out.push_str(&self.error_html("secrets", "Secrets"));
        }
        for s in &self.description.secrets {
            let name = format!("secrets.{}", s.name);
            let id = input_id(&name);
            let set = self.ctx.secrets_set.iter().any(|n| n == s.name);
            let kept = self.ctx.kept.get(s.name);
            let placeholder = if kept.is_some() {
                "Entered (kept from your last try; leave empty to use it)"
            } else if set {
                "Set (leave empty to keep)"
            } else {
                ""
            };
            let aria = self.aria(&name, !s.help.is_empty());
            let reload = if s.kind == SecretKind::Token {
                self.reload_attrs()
            } else {
                String::new()
            };
            let control = match s.kind {
                SecretKind::PrivateKey => format!(
                    "<textarea id=\"{id}\" name=\"{name}\" rows=\"4\" autocomplete=\"off\" spellcheck=\"false\" placeholder=\"{}\"{aria}></textarea>",
                    esc(placeholder)
                ),
                _ => format!(
                    "<input id=\"{id}\" name=\"{name}\" type=\"password\" autocomplete=\"new-password\" placeholder=\"{}\"{aria}{reload}>",
                    esc(placeholder)
                ),
            };
            let _ = write!(
                out,
                "<div class=\"form-row\"><label for=\"{id}\">{}</label>{control}{}{}{}{}</div>",
                esc(s.label),
                kept.map(|k| format!(
                    "<input type=\"hidden\" name=\"{name}.kept\" value=\"{}\">",
                    esc(k)
                ))
                .unwrap_or_default(),
                if set {
                    format!(
                        "<label class=\"inline\"><input type=\"checkbox\" name=\"{name}.clear\"> Remove the saved {}</label>",
                        esc(&s.label.to_lowercase())
                    )
                } else {
                    String::new()
                },
                if s.help.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<span class=\"hint\" id=\"{id}-hint\">{}</span>",
                        help_html(s.help)
                    )
                },
                self.error_html(&name, s.label),
            );
        }
        out
    }

    fn test_button(&self) -> String {
        "<div class=\"form-row\"><button type=\"button\" class=\"btn\" id=\"test-connection\" hx-post=\"/settings/integrations/test\" hx-include=\"#integration-form\" hx-target=\"#test-result\" hx-indicator=\"#test-spinner\" hx-disabled-elt=\"this\">Test Connection</button> <span id=\"test-spinner\" class=\"htmx-indicator muted\">Connecting…</span></div><div id=\"test-result\" aria-live=\"polite\"></div>".to_string()
    }
}

/// The fields a Test Connection may fill in: (input name, detail name, title).
pub fn learned_fields(description: &Description) -> Vec<(String, String, String)> {
    fn walk(schema: &Value, path: &str, out: &mut Vec<(String, String, String)>) {
        let schema = non_null(schema);
        if let Some(l) = schema.get("x-ferry-learned").and_then(Value::as_str) {
            out.push((path.to_string(), l.to_string(), title_of(&schema, l)));
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                walk(s, &format!("{path}.{k}"), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&description.config_schema, "config", &mut out);
    out
}

/// One widget field alone (the data mapping reloaded with the remote's properties).
pub fn render_widget(
    description: &Description,
    ctx: &FormContext,
    config: &Value,
    name: &str,
    schema: &Value,
) -> String {
    let errors = Errors::default();
    let r = Renderer::new(description, ctx, &errors, config);
    let key = name.rsplit('.').next().unwrap_or(name);
    r.field(schema, name, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_connectors::describe::{Category, FORM_WIDGETS, Platform};
    use serde_json::json;

    /// The renderer draws every widget a connector may ask for.
    #[test]
    fn every_declared_widget_is_drawn() {
        for w in FORM_WIDGETS {
            let field = match *w {
                "template" => json!({"type": "string", "x-ferry-widget": w}),
                "oauth_account" | "opt_in_path" => {
                    json!({"type": ["integer", "null"], "x-ferry-widget": w})
                }
                _ => json!({"type": "array", "x-ferry-widget": w}),
            };
            let d = Description {
                config_schema: json!({"type": "object", "properties": {"f": field}}),
                ..Description::new(
                    "test",
                    "Test",
                    Category::CrmSync,
                    Platform {
                        id: "test",
                        name: "Test",
                        summary: "A test.",
                        page: None,
                    },
                )
            };
            let ctx = FormContext::default();
            let errors = Errors::default();
            let html = Renderer::new(&d, &ctx, &errors, &json!({})).render();
            assert!(
                html.contains("name=\"config.f") || html.contains("id=\"config-f"),
                "{w}: {html}"
            );
        }
    }

    #[test]
    fn text_is_escaped_and_help_keeps_code() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            help_html("Use `{date}`\nand <b>"),
            "Use <code>{date}</code> and &lt;b&gt;"
        );
    }
}
