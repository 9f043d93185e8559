//! How failed sign-ins slow down further attempts. Two counters, both shared by every process
//! through the store:
//!
//! - **one account at one client**: the first few failures cost nothing, then each failure
//!   doubles the wait before the next attempt from that client for that account, up to a cap.
//!   Another client (the account's owner elsewhere) is not slowed by it;
//! - **one client address, over every account**: a budget of failures, after which the client
//!   waits before each further attempt. It stops one address from guessing across many
//!   accounts without touching any other address.
//!
//! A streak ends after a quiet hour ([`Policy`] holds the numbers). A right password is never
//! refused because of someone else's failures: only the clients that failed wait.

use std::net::IpAddr;

/// The numbers of the throttling rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures of one account at one client that cost no wait.
    pub free_account_failures: i64,
    /// The wait after the first failure past the free ones, in seconds; it doubles with
    /// each further failure.
    pub first_account_delay_secs: i64,
    /// The longest wait for one account at one client, in seconds.
    pub max_account_delay_secs: i64,
    /// Failures one client address may make (over all accounts) before it must wait.
    pub client_budget: i64,
    /// The wait of a client over its budget, before each further attempt, in seconds.
    pub client_delay_secs: i64,
    /// A streak of failures is forgotten after this long without one, in seconds.
    pub quiet_reset_secs: i64,
}

impl Default for Policy {
    /// 3 free failures, then 1 s, 2 s, 4 s, … up to 15 minutes per account at one client;
    /// 100 failures per client address, then 15 minutes before each further attempt; streaks
    /// end after an hour without failures.
    fn default() -> Self {
        Policy {
            free_account_failures: 3,
            first_account_delay_secs: 1,
            max_account_delay_secs: 900,
            client_budget: 100,
            client_delay_secs: 900,
            quiet_reset_secs: 3600,
        }
    }
}

impl Policy {
    /// The wait, in seconds, after the `failures`-th failure in a row of one account at one
    /// client.
    pub fn account_delay_secs(&self, failures: i64) -> i64 {
        let over = failures - self.free_account_failures;
        if over <= 0 {
            return 0;
        }
        let factor = 1i64 << (over - 1).min(40);
        self.first_account_delay_secs
            .saturating_mul(factor)
            .min(self.max_account_delay_secs)
    }

    /// The wait, in seconds, after the `failures`-th failure in a row from one client
    /// address.
    pub fn client_delay_secs(&self, failures: i64) -> i64 {
        if failures >= self.client_budget {
            self.client_delay_secs
        } else {
            0
        }
    }
}

/// A client address as a throttling key: IPv4 addresses (also IPv4-mapped IPv6) as they
/// are, IPv6 addresses by their /64 network, since one host commonly holds a whole /64.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// The throttling key of one account (as typed: trimmed, lower-cased, at most 254
/// characters) at one client.
pub fn account_key(email: &str, client: IpAddr) -> String {
    let email: String = email.trim().to_lowercase().chars().take(254).collect();
    format!("acct:{email}|{}", client_key(client))
}

/// The throttling key of one client address.
pub fn address_key(client: IpAddr) -> String {
    format!("ip:{}", client_key(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_delay_grows_then_caps() {
        let p = Policy::default();
        let d: Vec<i64> = (1..=8).map(|n| p.account_delay_secs(n)).collect();
        assert_eq!(d, [0, 0, 0, 1, 2, 4, 8, 16]);
        assert_eq!(p.account_delay_secs(14), 900);
        assert_eq!(p.account_delay_secs(i64::MAX), 900);
    }

    #[test]
    fn client_budget() {
        let p = Policy::default();
        assert_eq!(p.client_delay_secs(99), 0);
        assert_eq!(p.client_delay_secs(100), 900);
    }

    #[test]
    fn keys() {
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(client_key(v6), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7");
        assert_eq!(
            account_key(" Ana@X.edu ", "192.0.2.7".parse().unwrap()),
            "acct:ana@x.edu|192.0.2.7"
        );
    }
}
