//! A tiny W3C WebDriver client for browser tests (chromedriver + headless Chromium).
//!
//! Include it from an integration test with
//! `#[path = "support/webdriver.rs"] mod webdriver;`.
//!
//! ```ignore
//! let Some(browser) = webdriver::Browser::start().await? else {
//!     assert!(std::env::var("CI").as_deref() != Ok("true"), "chromium/chromedriver missing on CI");
//!     eprintln!("skipping: chromium/chromedriver not installed");
//!     return Ok(());
//! };
//! browser.goto(&format!("{base}/login")).await?;
//! browser.find("input[name=username]").await?.send_keys("admin").await?;
//! browser.find("button[type=submit]").await?.click().await?;
//! browser.wait_for_text("h1", "Contacts").await?;
//! ```
//!
//! Only `reqwest`, `serde_json`, `tokio` and `anyhow` are used.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde_json::{Value, json};

/// How long `find` and `wait_for_text` poll before giving up.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// How long chromedriver may take to answer `/status` with `ready: true`.
const STARTUP: Duration = Duration::from_secs(30);
/// The W3C web element identifier key.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An error reported by the WebDriver server (`{"value": {"error", "message"}}`).
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub status: u16,
    /// W3C error code, e.g. `no such element`, `stale element reference`.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebDriver error `{}` (HTTP {}): {}",
            self.error, self.status, self.message
        )
    }
}

impl std::error::Error for WebDriverError {}

fn wd_error(err: &anyhow::Error) -> Option<&WebDriverError> {
    err.downcast_ref::<WebDriverError>()
}

/// Connection to one WebDriver session; shared by the browser and its elements.
struct Session {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    server: String,
    /// `http://127.0.0.1:PORT/session/ID`
    url: String,
    id: String,
}

impl Session {
    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        call(&self.http, method, &format!("{}{}", self.url, path), body).await
    }
}

async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = http.request(method.clone(), url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("WebDriver request {method} {url}"))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .with_context(|| format!("reading WebDriver response to {method} {url}"))?;
    let mut json: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "WebDriver {method} {url}: HTTP {status}, non-JSON body: {}",
            excerpt(&text, 500)
        )
    })?;
    let value = json
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if !status.is_success() || value.get("error").is_some_and(Value::is_string) {
        let field = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut message = field("message");
        if message.is_empty() {
            message = excerpt(&text, 500);
        }
        return Err(anyhow::Error::new(WebDriverError {
            status: status.as_u16(),
            error: field("error"),
            message,
        })
        .context(format!("{method} {url}")));
    }
    Ok(value)
}

/// A headless Chromium driven through chromedriver. Dropping it ends the session
/// (best effort), kills chromedriver and removes the temporary profile.
pub struct Browser {
    session: Arc<Session>,
    child: tokio::process::Child,
    temp_dir: PathBuf,
    closed: bool,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session", &self.session.url)
            .finish_non_exhaustive()
    }
}

/// A reference to a DOM element in the browser's current page.
#[derive(Clone)]
pub struct Element {
    session: Arc<Session>,
    id: String,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Element").field(&self.id).finish()
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn locate(env: &str, default: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        // An explicit path, or a bare command name looked up on PATH.
        let p = PathBuf::from(p);
        return if p.is_file() {
            Some(p)
        } else {
            find_on_path(p.to_str()?)
        };
    }
    let default = PathBuf::from(default);
    if default.is_file() {
        return Some(default);
    }
    names.iter().find_map(|n| find_on_path(n))
}

fn fresh_temp_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "ferry-webdriver-{}-{nanos}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("profile"))
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Up to `max` characters of `s`, cut on a char boundary.
fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… [{} more bytes]", &s[..i], s.len() - i),
        None => s.to_owned(),
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Returns `Ok(None)` when
    /// chromedriver (`$CHROMEDRIVER`, `/usr/bin/chromedriver`, `PATH`) or Chromium
    /// (`$CHROME_BIN`, `/usr/bin/chromium`, `PATH`) is not installed.
    pub async fn start() -> Result<Option<Browser>> {
        Self::start_with(true).await
    }

    /// As [`Browser::start`], with JavaScript turned off for every page (as a user's setting
    /// would), to test what works without scripts. WebDriver's own commands (find, click,
    /// send keys, read text and attributes) work as usual.
    pub async fn start_without_javascript() -> Result<Option<Browser>> {
        Self::start_with(false).await
    }

    async fn start_with(javascript: bool) -> Result<Option<Browser>> {
        let Some(driver) = locate("CHROMEDRIVER", "/usr/bin/chromedriver", &["chromedriver"])
        else {
            return Ok(None);
        };
        let Some(chrome) = locate(
            "CHROME_BIN",
            "/usr/bin/chromium",
            &["chromium", "chromium-browser"],
        ) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(90))
            .build()
            .context("building HTTP client")?;
        let temp_dir = fresh_temp_dir()?;
        // The port is picked by binding and releasing it; another process could grab it
        // in between, so retry a couple of times if chromedriver exits early.
        let mut last_err = None;
        for _ in 0..3 {
            match Self::launch(&http, &driver, &chrome, &temp_dir, javascript).await {
                Ok(browser) => return Ok(Some(browser)),
                Err(e) => last_err = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&temp_dir);
        Err(last_err.unwrap_or_else(|| anyhow!("could not start chromedriver")))
    }

    async fn launch(
        http: &reqwest::Client,
        driver: &Path,
        chrome: &Path,
        temp_dir: &Path,
        javascript: bool,
    ) -> Result<Browser> {
        let port = free_port()?;
        let log = temp_dir.join("chromedriver.log");
        let mut child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", driver.display()))?;
        let server = format!("http://127.0.0.1:{port}");

        // Wait for `GET /status` to report ready.
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "chromedriver exited early ({status}); log:\n{}",
                    log_tail(&log)
                );
            }
            let ready = call(http, Method::GET, &format!("{server}/status"), None).await;
            if let Ok(v) = &ready
                && v.get("ready").and_then(Value::as_bool) == Some(true)
            {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                bail!(
                    "chromedriver on port {port} not ready after {STARTUP:?} (last: {ready:?}); log:\n{}",
                    log_tail(&log)
                );
            }
            tokio::time::sleep(POLL).await;
        }

        let profile = temp_dir.join("profile");
        let mut caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": chrome.to_string_lossy(),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                },
            },
        });
        if !javascript {
            // The content setting a policy would set: 2 blocks scripts on every site.
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["prefs"] =
                json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let created = match call(http, Method::POST, &format!("{server}/session"), Some(caps)).await
        {
            Ok(v) => v,
            Err(e) => {
                let _ = child.start_kill();
                return Err(e.context(format!(
                    "creating a Chromium session; chromedriver log:\n{}",
                    log_tail(&log)
                )));
            }
        };
        let id = created
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("new session response without sessionId: {created}"))?
            .to_owned();
        let session = Arc::new(Session {
            http: http.clone(),
            url: format!("{server}/session/{id}"),
            server,
            id,
        });
        let browser = Browser {
            session,
            child,
            temp_dir: temp_dir.to_owned(),
            closed: false,
        };
        // A desktop-sized viewport so layouts (and clicks) match what users see. Best effort.
        let _ = browser
            .cmd(
                Method::POST,
                "/window/rect",
                Some(json!({"width": 1280, "height": 900})),
            )
            .await;
        Ok(browser)
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        self.session.cmd(method, path, body).await
    }

    /// Sets the window's size in CSS pixels (screenshots and layout checks need a known one).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.cmd(
            Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await
        .map(drop)
    }

    /// Ends the session and stops chromedriver now (instead of on drop).
    pub async fn quit(mut self) -> Result<()> {
        self.closed = true;
        let res = self.cmd(Method::DELETE, "", None).await.map(drop);
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.temp_dir);
        res
    }

    /// Navigates to an absolute URL and waits for the page load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .with_context(|| format!("goto {url}"))?;
        Ok(())
    }

    /// The handles of the open windows (tabs and pop-ups).
    pub async fn window_handles(&self) -> Result<Vec<String>> {
        let v = self.cmd(Method::GET, "/window/handles", None).await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The handle of the window commands go to.
    pub async fn window_handle(&self) -> Result<String> {
        as_string(self.cmd(Method::GET, "/window", None).await?)
    }

    /// Sends commands to the window `handle` from now on.
    pub async fn switch_to_window(&self, handle: &str) -> Result<()> {
        self.cmd(Method::POST, "/window", Some(json!({ "handle": handle })))
            .await
            .context("switching windows")?;
        Ok(())
    }

    pub async fn current_url(&self) -> Result<String> {
        as_string(self.cmd(Method::GET, "/url", None).await?)
    }

    pub async fn title(&self) -> Result<String> {
        as_string(self.cmd(Method::GET, "/title", None).await?)
    }

    pub async fn page_source(&self) -> Result<String> {
        as_string(self.cmd(Method::GET, "/source", None).await?)
    }

    /// Waits up to [`WAIT`] for an element matching `css` to be present.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let deadline = Instant::now() + WAIT;
        loop {
            let body = json!({ "using": "css selector", "value": css });
            match self.cmd(Method::POST, "/element", Some(body)).await {
                Ok(v) => return self.element(&v),
                Err(e) if wd_error(&e).is_some_and(|w| w.error == "no such element") => {
                    if Instant::now() > deadline {
                        let url = self.current_url().await.unwrap_or_default();
                        bail!("no element matching `{css}` after {WAIT:?} on {url}");
                    }
                }
                Err(e) => return Err(e.context(format!("find `{css}`"))),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an element matching `css` (as [`Browser::find`]) and clicks it.
    pub async fn click_on(&self, css: &str) -> Result<()> {
        self.find(css).await?.click().await
    }

    /// Waits for an element matching `css` whose text contains `text` (as
    /// [`Browser::wait_for_text`]) and clicks it.
    pub async fn click_text(&self, css: &str, text: &str) -> Result<()> {
        self.wait_for_text(css, text).await?.click().await
    }

    /// All elements currently matching `css` (no waiting; may be empty).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let body = json!({ "using": "css selector", "value": css });
        let v = self
            .cmd(Method::POST, "/elements", Some(body))
            .await
            .with_context(|| format!("find_all `{css}`"))?;
        v.as_array()
            .ok_or_else(|| anyhow!("find_all: expected an array, got {v}"))?
            .iter()
            .map(|e| self.element(e))
            .collect()
    }

    /// Waits up to [`WAIT`] until an element matching `css` has rendered text containing
    /// `text`, and returns the first such element.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> Result<Element> {
        const SCRIPT: &str = "let els; try { els = document.querySelectorAll(arguments[0]); } \
            catch (e) { return { invalid: String(e) }; } \
            for (const el of els) { if ((el.innerText ?? el.textContent ?? '').includes(arguments[1])) return { found: el }; } \
            return { seen: Array.from(els, el => el.innerText ?? el.textContent ?? '').slice(0, 5) };";
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match self.execute(SCRIPT, vec![json!(css), json!(text)]).await {
                Ok(v) => {
                    if let Some(el) = v.get("found") {
                        return self.element(el);
                    }
                    if let Some(msg) = v.get("invalid") {
                        bail!("wait_for_text: invalid selector `{css}`: {msg}");
                    }
                    format!(
                        "matching elements' text: {}",
                        v.get("seen").unwrap_or(&Value::Null)
                    )
                }
                // Navigation in progress and similar: retry until the deadline.
                Err(e) if wd_error(&e).is_some_and(|w| w.error != "invalid session id") => {
                    format!("{e:#}")
                }
                Err(e) => return Err(e),
            };
            if Instant::now() > deadline {
                let url = self.current_url().await.unwrap_or_default();
                let source = self.page_source().await.unwrap_or_default();
                let body = source
                    .find("<body")
                    .map_or(source.as_str(), |i| &source[i..]);
                bail!(
                    "no `{css}` containing {text:?} after {WAIT:?} on {url}\n{last}\npage source excerpt:\n{}",
                    excerpt(body, 3000)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot_png(&self) -> Result<Vec<u8>> {
        let b64 = as_string(self.cmd(Method::GET, "/screenshot", None).await?)?;
        base64_decode(&b64)
    }

    /// Runs `script` as a function body (use `return`); `args` are `arguments[0..]`.
    /// Pass elements with [`Element::to_arg`]; returned elements come back as W3C
    /// element references (turn them into [`Element`]s with [`Browser::element`]).
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Wraps a W3C element reference (`{"element-6066-…": id}`) as an [`Element`].
    pub fn element(&self, reference: &Value) -> Result<Element> {
        let id = reference
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("not a WebDriver element reference: {reference}"))?;
        Ok(Element {
            session: self.session.clone(),
            id: id.to_owned(),
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            // Drop can't await: end the session with a plain blocking HTTP request so
            // chromedriver shuts Chromium down, then kill chromedriver itself.
            let _ = delete_session_blocking(&self.session);
            let _ = self.child.start_kill();
            let _ = std::fs::remove_dir_all(&self.temp_dir);
        }
    }
}

fn delete_session_blocking(session: &Session) -> std::io::Result<()> {
    let addr = session.server.trim_start_matches("http://");
    let sock: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        session.id
    )?;
    // Wait for the whole response so the session (and Chromium) is really gone before
    // chromedriver is killed. chromedriver keeps the connection open despite
    // `Connection: close`, so read up to Content-Length rather than to EOF.
    let mut resp = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        resp.extend_from_slice(&buf[..n]);
        if let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if resp.len() >= end + 4 + len {
                return Ok(());
            }
        }
    }
}

impl Element {
    async fn cmd(&self, method: Method, what: &str, body: Option<Value>) -> Result<Value> {
        self.session
            .cmd(method, &format!("/element/{}{}", self.id, what), body)
            .await
    }

    /// This element as a script argument for [`Browser::execute`].
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    /// Scrolls the element to the middle of the viewport (clear of the sticky top bar, as a
    /// person would), then clicks it.
    pub async fn click(&self) -> Result<()> {
        self.session
            .cmd(
                Method::POST,
                "/execute/sync",
                Some(json!({
                    "script": "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});",
                    "args": [self.to_arg()],
                })),
            )
            .await
            .context("scrolling to the element")?;
        self.cmd(Method::POST, "/click", Some(json!({})))
            .await
            .context("click")?;
        Ok(())
    }

    /// Types `text` into the element (focusing it first).
    pub async fn send_keys(&self, text: &str) -> Result<()> {
        self.cmd(Method::POST, "/value", Some(json!({ "text": text })))
            .await
            .context("send_keys")?;
        Ok(())
    }

    pub async fn clear(&self) -> Result<()> {
        self.cmd(Method::POST, "/clear", Some(json!({})))
            .await
            .context("clear")?;
        Ok(())
    }

    /// The element's rendered (visible) text.
    pub async fn text(&self) -> Result<String> {
        as_string(self.cmd(Method::GET, "/text", None).await?)
    }

    /// The content attribute's value, or `None` if the element does not have it.
    /// This is the attribute as written in the HTML, not live state: for what the
    /// user typed into an input use `prop("value")`.
    pub async fn attr(&self, name: &str) -> Result<Option<String>> {
        match self
            .cmd(Method::GET, &format!("/attribute/{name}"), None)
            .await?
        {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Ok(Some(other.to_string())),
        }
    }

    /// A DOM property (e.g. `value`, `checked`) as JSON.
    pub async fn prop(&self, name: &str) -> Result<Value> {
        self.cmd(Method::GET, &format!("/property/{name}"), None)
            .await
    }
}

fn as_string(v: Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(anyhow!("expected a string from WebDriver, got {other}")),
    }
}

/// Standard base64 (with or without padding) — enough for screenshots.
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s
        .as_bytes()
        .iter()
        .filter(|c| !c.is_ascii_whitespace() && **c != b'=')
    {
        acc = (acc << 6) | val(c).ok_or_else(|| anyhow!("invalid base64 byte {c:#x}"))?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
