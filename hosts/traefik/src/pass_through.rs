//! `on_invalid_policy: pass`: an instance whose policy failed validation serves every request unchanged, and
//! says so in Traefik's log (a WARN line) at most once a minute per plugin instance (Traefik pools instances),
//! with how many responses went out without the plugin's headers since it last said so.

use std::time::{Duration, Instant};

/// How often an unprotected instance repeats that responses go out without the plugin's headers.
pub const NOTICE_INTERVAL: Duration = Duration::from_secs(60);

/// The responses this instance let through unchanged, and when it last logged them.
#[derive(Debug, Default)]
pub struct PassThroughNotice {
    unnoticed: u64,
    last_notice: Option<Instant>,
}

impl PassThroughNotice {
    /// Counts one request served unchanged; the line to log when none was logged in the last minute.
    pub fn count(&mut self, now: Instant) -> Option<String> {
        self.unnoticed = self.unnoticed.saturating_add(1);
        let due = self
            .last_notice
            .is_none_or(|last| now.saturating_duration_since(last) >= NOTICE_INTERVAL);
        if !due {
            return None;
        }
        let line = format!(
            "secure-headers: on_invalid_policy is pass and the policy is invalid: {} response(s) went out \
             without the plugin's security headers since the last notice (this plugin instance)",
            self.unnoticed
        );
        self.unnoticed = 0;
        self.last_notice = Some(now);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_is_noticed_then_one_line_a_minute_counts_the_rest() {
        let start = Instant::now();
        let mut notice = PassThroughNotice::default();
        let first = notice.count(start).unwrap();
        assert!(
            first.contains("1 response(s) went out without the plugin's security headers"),
            "{first}"
        );
        for second in 1..60 {
            assert_eq!(notice.count(start + Duration::from_secs(second)), None);
        }
        let next = notice.count(start + NOTICE_INTERVAL).unwrap();
        assert!(
            next.contains("60 response(s)"),
            "59 quiet ones and this one: {next}"
        );
        assert_eq!(
            notice.count(start + NOTICE_INTERVAL + Duration::from_secs(1)),
            None
        );
    }
}
