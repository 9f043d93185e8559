//! EveryAction's API (NGP VAN v4) as the sync uses it, on the shared HTTP plumbing: Basic
//! authentication with the API key in EveryAction mode (`KEY|1`), the per-key rate limit,
//! retries of 429s (waiting the "Try again in N ms" the body names: VAN sends no `Retry-After`),
//! 5xx answers and timeouts.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crm::http::{Answer, Calls, Http, RetryPolicy, Window};

/// A failed call: VAN's answer (status and the first error's text) or no answer at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct EaError {
    /// VAN's HTTP status, `None` when no answer came.
    pub status: Option<u16>,
    /// What went wrong, for people.
    pub message: String,
}

impl EaError {
    /// A 401: a wrong key, a wrong mode or a wrong user name (VAN cannot tell them apart).
    pub fn is_refused_credentials(&self) -> bool {
        self.status == Some(401)
    }

    /// Trying again later may help.
    pub fn is_transient(&self) -> bool {
        match self.status {
            None => true,
            Some(s) => s == 429 || s >= 500,
        }
    }

    fn from_answer(what: &str, a: &Answer) -> EaError {
        let detail = serde_json::from_str::<Value>(&a.body)
            .ok()
            .and_then(|v| {
                let e = v.get("errors")?.get(0)?;
                let text = e.get("text")?.as_str()?.to_string();
                Some(match e.get("properties").and_then(Value::as_array) {
                    Some(p) if !p.is_empty() => format!(
                        "{text} ({})",
                        p.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => text,
                })
            })
            .unwrap_or_else(|| {
                let ct = a
                    .headers
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if ct.contains("json") {
                    a.body.chars().take(200).collect()
                } else {
                    format!("a {ct} page")
                }
            });
        EaError {
            status: Some(a.status),
            message: format!("EveryAction answered {what} with {}: {detail}", a.status),
        }
    }
}

/// "Rate limit exceeded. Try again in 30 ms." → 30 ms.
pub fn try_again_hint(answer: &Answer) -> Option<Duration> {
    let (_, rest) = answer.body.split_once("Try again in ")?;
    let (n, unit) = rest.trim_start().split_once(' ')?;
    let n: u64 = n.trim().parse().ok()?;
    Some(if unit.starts_with("ms") {
        Duration::from_millis(n)
    } else if unit.starts_with('s') {
        Duration::from_secs(n)
    } else {
        Duration::from_millis(n)
    })
}

/// How hard to use EveryAction.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per second per key (VAN's "High" profile: 200; "Medium": 15).
    pub per_second: usize,
    /// Retries of one request.
    pub retries: u32,
    /// The first backoff of a 5xx or timeout.
    pub backoff: Duration,
    /// Requests time out after this.
    pub timeout: Duration,
    /// The first wait between polls of an export job (doubled up to 10 s).
    pub first_poll: Duration,
    /// Polls of one export job before the run gives up.
    pub max_polls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_second: 200,
            retries: 6,
            backoff: Duration::from_millis(350),
            timeout: Duration::from_secs(60),
            first_poll: Duration::from_millis(200),
            max_polls: 400,
        }
    }
}

/// The key's profile (`GET /apiKeyProfiles`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyProfile {
    /// The database the key belongs to.
    #[serde(default)]
    pub database_name: Option<String>,
    /// The committee.
    #[serde(default)]
    pub committee_name: Option<String>,
    /// The user's first name.
    #[serde(default)]
    pub user_first_name: Option<String>,
    /// The user's last name.
    #[serde(default)]
    pub user_last_name: Option<String>,
    /// The API user.
    #[serde(default)]
    pub username: Option<String>,
}

/// A column of the Contacts export (`GET /changedEntityExportJobs/fields/Contacts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportField {
    /// The column name.
    pub field_name: String,
    /// Always exported.
    #[serde(default)]
    pub is_core_field: bool,
    /// Coded values (`{id, name}`), e.g. the opt-in statuses.
    #[serde(default)]
    pub available_values: Option<Vec<AvailableValue>>,
}

/// A coded value of an export column.
#[derive(Debug, Clone, Deserialize)]
pub struct AvailableValue {
    /// The code in the files.
    pub id: Value,
    /// Its name (`Opt-In`).
    pub name: String,
}

/// An export job's state.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportJob {
    /// `Pending`, `InProcess`, `Error` or `Complete`.
    pub job_status: String,
    /// The files, once complete.
    #[serde(default)]
    pub files: Vec<ExportFile>,
    /// VAN's message.
    #[serde(default)]
    pub message: Option<String>,
}

/// One file of an export job.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportFile {
    /// A pre-signed URL, fetched without authentication.
    pub download_url: String,
}

/// A client for one instance.
pub struct Client {
    http: Http,
    window: Window,
    base: String,
    login: String,
    key: SecretString,
    limits: Limits,
}

impl Client {
    /// A client for the API at `base` (ending with `/`), as `login` with the API `key`.
    pub fn new(base: &str, login: &str, key: SecretString, limits: Limits) -> Client {
        Client {
            http: Http::new(
                limits.timeout,
                RetryPolicy {
                    retries: limits.retries,
                    backoff: limits.backoff,
                    max_wait: Duration::from_secs(30),
                },
                try_again_hint,
            )
            .without_redirects(limits.timeout),
            window: Window::new(limits.per_second, Duration::from_secs(1)),
            base: base.to_string(),
            login: login.trim().to_string(),
            key,
            limits,
        }
    }

    /// What the client sent so far.
    pub fn calls(&self) -> Calls {
        self.http.calls()
    }

    /// Sends one call with retries; `Ok` is a 2xx or 3xx answer.
    async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, EaError> {
        let a = self.call_raw(what, method, path, body).await?;
        if a.status >= 400 {
            return Err(EaError::from_answer(what, &a));
        }
        Ok(a)
    }

    /// Sends one call with retries of 429s, 5xx and timeouts; any other answer is returned.
    async fn call_raw(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, EaError> {
        let url = format!("{}{}", self.base, path.trim_start_matches('/'));
        let password = format!("{}|1", self.key.expose_secret().trim());
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .client()
                .request(method.clone(), &url)
                .basic_auth(&self.login, Some(&password))
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let outcome = self.http.send_once(&self.window, req).await;
            let (retry_answer, err) = match outcome {
                Ok(a) if a.status != 429 && a.status < 500 => return Ok(a),
                Ok(a) => {
                    let e = EaError::from_answer(what, &a);
                    (Some(a), e)
                }
                Err(e) => (
                    None,
                    EaError {
                        status: None,
                        message: format!("EveryAction did not answer {what}: {e}"),
                    },
                ),
            };
            match self.http.retry_wait(attempt, retry_answer.as_ref()) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(err),
            }
            attempt += 1;
        }
    }

    fn json<T: serde::de::DeserializeOwned>(what: &str, a: &Answer) -> Result<T, EaError> {
        serde_json::from_str(&a.body).map_err(|e| EaError {
            status: Some(a.status),
            message: format!("EveryAction's answer to {what} could not be read: {e}"),
        })
    }

    /// The API key's profile (Test Connection).
    pub async fn api_key_profile(&self) -> Result<ApiKeyProfile, EaError> {
        #[derive(Deserialize)]
        struct Page {
            items: Vec<ApiKeyProfile>,
        }
        let what = "the API key profile request";
        let a = self
            .call(what, reqwest::Method::GET, "apiKeyProfiles", None)
            .await?;
        let page: Page = Self::json(what, &a)?;
        page.items.into_iter().next().ok_or_else(|| EaError {
            status: Some(a.status),
            message: "EveryAction returned no profile for the API key".into(),
        })
    }

    /// The columns of the Contacts export.
    pub async fn contact_fields(&self) -> Result<Vec<ExportField>, EaError> {
        let what = "the Contacts fields request";
        let a = self
            .call(
                what,
                reqwest::Method::GET,
                "changedEntityExportJobs/fields/Contacts",
                None,
            )
            .await?;
        Self::json(what, &a)
    }

    /// Creates a Contacts export of the records changed since `from` (not by this API user),
    /// with `fields`; returns the job's ID.
    pub async fn create_export_job(
        &self,
        from: jiff::Timestamp,
        fields: &[String],
    ) -> Result<u64, EaError> {
        let what = "the export job request";
        let body = json!({
            "resourceType": "Contacts",
            "dateChangedFrom": from.strftime("%Y-%m-%dT%H:%M:%S.00Z").to_string(),
            "requestedFields": fields,
            "excludeChangesFromSelf": true,
        });
        let a = self
            .call(
                what,
                reqwest::Method::POST,
                "changedEntityExportJobs",
                Some(&body),
            )
            .await?;
        let v: Value = Self::json(what, &a)?;
        v.get("exportJobId")
            .and_then(Value::as_u64)
            .ok_or_else(|| EaError {
                status: Some(a.status),
                message: "EveryAction's export job answer has no exportJobId".into(),
            })
    }

    /// Polls an export job until it is Complete; returns its file URLs.
    pub async fn wait_for_export(&self, job: u64) -> Result<Vec<String>, EaError> {
        let what = "the export job status request";
        let mut wait = self.limits.first_poll;
        for _ in 0..self.limits.max_polls {
            let a = self
                .call(
                    what,
                    reqwest::Method::GET,
                    &format!("changedEntityExportJobs/{job}"),
                    None,
                )
                .await?;
            let j: ExportJob = Self::json(what, &a)?;
            match j.job_status.as_str() {
                "Complete" => return Ok(j.files.into_iter().map(|f| f.download_url).collect()),
                "Error" => {
                    return Err(EaError {
                        status: Some(a.status),
                        message: format!(
                            "EveryAction's export job {job} failed: {}",
                            j.message.unwrap_or_default()
                        ),
                    });
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        Err(EaError {
            status: None,
            message: format!("EveryAction's export job {job} did not finish in time"),
        })
    }

    /// Sets the opt-in status of one phone of a person, sending only that phone (VAN appends
    /// what it is sent; the same number changes in place).
    pub async fn set_phone_opt_in(
        &self,
        van_id: &str,
        phone: &str,
        code: &str,
    ) -> Result<(), EaError> {
        let body = json!({"phones": [{"phoneNumber": phone, "phoneOptInStatus": code}]});
        self.call(
            "the opt-in update",
            reqwest::Method::POST,
            &format!("people/{}", van_id.trim()),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// `POST /people/find`: the matched VAN ID, or `None` (404 Unmatched).
    pub async fn find(&self, candidate: &Value) -> Result<Option<String>, EaError> {
        let what = "the find request";
        let a = self
            .call_raw(what, reqwest::Method::POST, "people/find", Some(candidate))
            .await?;
        match a.status {
            404 if a.body.contains("Unmatched") => Ok(None),
            200..=399 => Ok(Some(Self::stub_id(what, &a)?)),
            _ => Err(EaError::from_answer(what, &a)),
        }
    }

    /// `POST /people/findOrCreate`: the VAN ID and whether VAN created the record. Call it only
    /// with a candidate above VAN's match minimum, or it makes a duplicate.
    pub async fn find_or_create(&self, candidate: &Value) -> Result<(String, bool), EaError> {
        let what = "the findOrCreate request";
        let a = self
            .call(
                what,
                reqwest::Method::POST,
                "people/findOrCreate",
                Some(candidate),
            )
            .await?;
        Ok((Self::stub_id(what, &a)?, a.status == 201))
    }

    fn stub_id(what: &str, a: &Answer) -> Result<String, EaError> {
        let v: Value = Self::json(what, a)?;
        v.get("vanId")
            .and_then(Value::as_u64)
            .map(|n| n.to_string())
            .ok_or_else(|| EaError {
                status: Some(a.status),
                message: format!("EveryAction's answer to {what} has no vanId"),
            })
    }

    /// Downloads an export file (pre-signed: no authentication), with retries.
    pub async fn download(&self, url: &str) -> Result<String, EaError> {
        let what = "an export file download";
        let mut attempt = 0;
        loop {
            let req = self.http.client().get(url);
            let outcome = self.http.send_once(&self.window, req).await;
            let (answer, err) = match outcome {
                Ok(a) if a.is_success() => return Ok(a.body),
                Ok(a) => {
                    let e = EaError::from_answer(what, &a);
                    if !e.is_transient() {
                        return Err(e);
                    }
                    (Some(a), e)
                }
                Err(e) => (
                    None,
                    EaError {
                        status: None,
                        message: format!("the export file did not download: {e}"),
                    },
                ),
            };
            match self.http.retry_wait(attempt, answer.as_ref()) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(err),
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_429_hint_is_read_from_the_text() {
        let a = Answer {
            status: 429,
            body:
                r#"{"errors":[{"code":"429","text":"Rate limit exceeded. Try again in 30 ms."}]}"#
                    .into(),
            ..Answer::default()
        };
        assert_eq!(try_again_hint(&a), Some(Duration::from_millis(30)));
        assert_eq!(try_again_hint(&Answer::default()), None);
    }
}
