//! HTTP plumbing shared by the API connectors: a rolling-window rate limiter (one per account,
//! shared by every run of it), retries with exponential backoff and jitter that honour
//! `Retry-After` and a provider's own hints, request timeouts, and counts of what was sent.
//!
//! A connector's client builds its requests and reads its provider's errors; [`Http::send_once`]
//! sends one within a [`Window`], and [`Http::retry_wait`] says whether and when to try again.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::SecretString;

/// A rolling-window limiter: at most `max` requests in any `window`, as the provider counts them.
///
/// The provider counts a request when it arrives, which the client cannot see: a request that
/// took long to arrive (a slow connection, a busy server) and a later one that arrived fast could
/// fall within one window at the provider while they did not at the client. So a request holds
/// its place from when it is sent until its answer has come back, and only then starts its
/// `window`: by then the provider has certainly counted it.
#[derive(Debug)]
pub struct Window {
    max: usize,
    window: Duration,
    state: std::sync::Mutex<WindowState>,
}

#[derive(Debug, Default)]
struct WindowState {
    /// Requests sent and not answered yet.
    in_flight: usize,
    /// When the answered requests of the last `window` were answered, oldest first.
    answered: VecDeque<Instant>,
}

/// A place in a [`Window`], held while a request is out; dropping it starts its window.
#[derive(Debug)]
pub struct Permit<'a>(&'a Window);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut st = self
            .0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.in_flight -= 1;
        st.answered.push_back(Instant::now());
    }
}

impl Window {
    /// At most `max` (at least 1) requests in any `window`.
    pub fn new(max: usize, window: Duration) -> Window {
        Window {
            max: max.max(1),
            window,
            state: Default::default(),
        }
    }

    /// Waits until one more request fits in the window; the request holds the permit until
    /// its answer is in.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let wait = {
                let mut st = self
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                while st
                    .answered
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    st.answered.pop_front();
                }
                if st.in_flight + st.answered.len() < self.max {
                    st.in_flight += 1;
                    return Permit(self);
                }
                match st.answered.front() {
                    Some(oldest) => self.window - now.duration_since(*oldest),
                    // Every place is taken by a request still out: look again shortly.
                    None => Duration::from_millis(10),
                }
            };
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
        }
    }
}

/// When and how often a failed request is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of one request after a 429, a 5xx or a timeout.
    pub retries: u32,
    /// The first backoff; doubled each retry, with jitter.
    pub backoff: Duration,
    /// No wait is longer, whatever the backoff or the provider's hint says.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 6,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0 for the first): the provider's `hint` when it
    /// gave one, else the backoff doubled `attempt` times with jitter; never more than
    /// [`RetryPolicy::max_wait`].
    pub fn wait(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        hint.unwrap_or_else(|| jitter(self.backoff * 2u32.saturating_pow(attempt)))
            .min(self.max_wait)
    }
}

/// `d` scaled by a random factor between 0.5 and 1.5, so that clients that failed together do
/// not all come back at once.
pub fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).unwrap_or_default();
    let frac = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    d.mul_f64(0.5 + frac)
}

/// A provider's hint of when to try again, read from a failed answer (`None`: no hint, back
/// off as usual).
pub type HintFn = fn(&Answer) -> Option<Duration>;

/// The standard hint: the `Retry-After` header, in seconds or as an HTTP date.
pub fn retry_after_hint(answer: &Answer) -> Option<Duration> {
    retry_after(&answer.headers, SystemTime::now())
}

/// The wait a `Retry-After` header asks for, seen at `now`: delay-seconds, or an HTTP date
/// (a date already past asks for no wait).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::try_from(now).ok()?;
    Some(at.duration_since(now).try_into().unwrap_or(Duration::ZERO))
}

/// How a client gets its access token; `E` is the provider's error.
#[async_trait::async_trait]
pub trait TokenSource<E>: Send + Sync {
    /// A valid access token (refreshed first if it is about to expire, for OAuth).
    async fn token(&self) -> Result<SecretString, E>;
    /// Called after a 401: the token was refused; refresh before the next [`TokenSource::token`].
    async fn invalidate(&self) {}
}

/// A token that does not expire (an API key, a private-app token).
pub struct StaticToken(pub SecretString);

#[async_trait::async_trait]
impl<E> TokenSource<E> for StaticToken {
    async fn token(&self) -> Result<SecretString, E> {
        Ok(self.0.clone())
    }
}

/// Counts of what a client did, for run details and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests sent again after a failure.
    pub retries: u64,
    /// Retries after a 429.
    pub rate_limited: u64,
}

/// A provider's answer, whatever its status.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text (empty when it could not be read).
    pub body: String,
}

impl Answer {
    /// A 2xx answer.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The HTTP side of one client: a connection pool with a timeout per request, the retry policy,
/// the provider's hint hook, and the counts.
#[derive(Debug)]
pub struct Http {
    client: reqwest::Client,
    policy: RetryPolicy,
    hint: HintFn,
    calls: std::sync::Mutex<Calls>,
}

impl Http {
    /// Requests time out after `timeout`; failures are retried as `policy` says, waiting what
    /// `hint` reads from the answer when it reads something ([`retry_after_hint`] for most).
    pub fn new(timeout: Duration, policy: RetryPolicy, hint: HintFn) -> Http {
        Http {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("the HTTP client builds"),
            policy,
            hint,
            calls: Default::default(),
        }
    }

    /// The same, but redirects are answers, not hops: for APIs whose writes answer `302 Found`
    /// with a `Location` (EveryAction), following it would turn each write into two requests.
    pub fn without_redirects(mut self, timeout: Duration) -> Http {
        self.client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds");
        self
    }

    /// The connection pool, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// What the client did so far.
    pub fn calls(&self) -> Calls {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `request` once a place in `window` is free, holding it until the answer is read.
    /// `Err` is a transport failure (no answer, or a timeout).
    pub async fn send_once(
        &self,
        window: &Window,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, String> {
        let permit = window.acquire().await;
        self.lock().requests += 1;
        let outcome = match request.send().await {
            Ok(res) => Ok(Answer {
                status: res.status().as_u16(),
                headers: res.headers().clone(),
                body: res.text().await.unwrap_or_default(),
            }),
            Err(e) => Err(e.to_string()),
        };
        drop(permit); // answered: its window starts now
        outcome
    }

    /// After the failed try number `attempt` (0 for the first) of a request the caller may send
    /// again, how long to wait first; `None` when it has had its retries. `answer` is the
    /// provider's failed answer (`None` for a transport failure).
    pub fn retry_wait(&self, attempt: u32, answer: Option<&Answer>) -> Option<Duration> {
        if attempt >= self.policy.retries {
            return None;
        }
        let mut calls = self.lock();
        calls.retries += 1;
        if answer.is_some_and(|a| a.status == 429) {
            calls.rate_limited += 1;
        }
        drop(calls);
        Some(self.policy.wait(attempt, answer.and_then(self.hint)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with_retry_after(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
        assert_eq!(
            retry_after(&with_retry_after("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(&with_retry_after("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date already past: no wait"
        );
        assert_eq!(retry_after(&with_retry_after("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    fn answer(status: u16, headers: HeaderMap, body: &str) -> Answer {
        Answer {
            status,
            headers,
            body: body.into(),
        }
    }

    /// A provider that says when in its body, in milliseconds.
    fn body_hint(a: &Answer) -> Option<Duration> {
        let (_, rest) = a.body.split_once("Try again in ")?;
        let (ms, _) = rest.split_once(" ms")?;
        ms.trim().parse().ok().map(Duration::from_millis)
    }

    #[test]
    fn the_wait_follows_the_hint_hook_and_is_capped() {
        let policy = RetryPolicy {
            retries: 3,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(20),
        };
        let http = Http::new(Duration::from_secs(5), policy.clone(), body_hint);
        let limited = answer(
            429,
            HeaderMap::new(),
            "Rate limit exceeded. Try again in 30 ms.",
        );
        assert_eq!(
            http.retry_wait(0, Some(&limited)),
            Some(Duration::from_millis(30))
        );
        let http = Http::new(Duration::from_secs(5), policy.clone(), retry_after_hint);
        assert_eq!(
            http.retry_wait(0, Some(&answer(429, with_retry_after("3"), ""))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            http.retry_wait(1, Some(&answer(503, with_retry_after("3600"), ""))),
            Some(Duration::from_secs(20)),
            "a hint longer than the cap is capped"
        );
        // Without a hint: the backoff doubled each retry, with jitter (0.5x to 1.5x), capped.
        let w = http.retry_wait(2, None).unwrap();
        assert!(
            (Duration::from_secs(2)..=Duration::from_secs(6)).contains(&w),
            "{w:?}"
        );
        assert_eq!(policy.wait(10, None), Duration::from_secs(20));
        assert_eq!(http.retry_wait(3, None), None, "three retries, then none");
        let calls = http.calls();
        assert_eq!((calls.retries, calls.rate_limited), (3, 1));
    }

    #[tokio::test]
    async fn the_window_never_lets_more_than_max_through() {
        let window = Duration::from_millis(300);
        let w = Window::new(3, window);
        let start = Instant::now();
        for _ in 0..3 {
            drop(w.acquire().await);
        }
        drop(w.acquire().await);
        assert!(
            start.elapsed() >= window,
            "the fourth waits until the first leaves the window"
        );
    }

    #[tokio::test]
    async fn a_request_holds_its_place_until_answered_and_its_window_starts_then() {
        let window = Duration::from_millis(200);
        let w = Window::new(2, window);
        let start = Instant::now();
        let slow = w.acquire().await;
        drop(w.acquire().await);
        // The slow request is answered after 150 ms: a third request waits for the first
        // answered one's window (200 ms), and the fourth for the slow one's (150 + 200 ms).
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(slow);
        drop(w.acquire().await);
        assert!(start.elapsed() >= window);
        drop(w.acquire().await);
        assert!(
            start.elapsed() >= Duration::from_millis(350),
            "{:?}",
            start.elapsed()
        );
    }
}
