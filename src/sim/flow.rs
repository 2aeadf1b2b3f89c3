//! Flow control, answering code 7: the per-second call limit with its ban, and the daily quota
//! (GMT+8 days).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::answer::ErrorAnswer;
use super::faults::Faults;

const API_LIMIT: &str = "accesscontrol.limited-by-api-access-count";
const APP_LIMIT: &str = "accesscontrol.limited-by-app-access-count";
const GMT8_SECS: i64 = 8 * 3600;
const DAY_SECS: i64 = 86_400;

/// Code 7 `accesscontrol.limited-by-api-access-count` with a ban of `ban_seconds` (at least 1).
pub(crate) fn api_limit(ban_seconds: u64) -> ErrorAnswer {
    ErrorAnswer::flow_control(API_LIMIT, ban_seconds.max(1))
}

/// The platform's flow control for one app: admitted calls in the last second, the current
/// ban, and the calls used today (GMT+8).
#[derive(Debug)]
pub(crate) struct FlowControl {
    window: VecDeque<Instant>,
    banned_until: Option<Instant>,
    day: i64,
    used_today: u64,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl {
            window: VecDeque::new(),
            banned_until: None,
            day: i64::MIN,
            used_today: 0,
        }
    }
}

impl FlowControl {
    /// Admits a call arriving at `now` (`unix_secs` on the wall clock), or refuses it with code 7.
    /// Refused calls do not count against the limits.
    pub(crate) fn admit(
        &mut self,
        faults: &Faults,
        now: Instant,
        unix_secs: i64,
    ) -> Result<(), ErrorAnswer> {
        if let Some(quota) = faults.daily_quota {
            let local = unix_secs + GMT8_SECS;
            let day = local.div_euclid(DAY_SECS);
            if day != self.day {
                self.day = day;
                self.used_today = 0;
            }
            if self.used_today >= quota {
                let until_midnight = DAY_SECS - local.rem_euclid(DAY_SECS);
                return Err(ErrorAnswer::flow_control(APP_LIMIT, until_midnight as u64));
            }
        }
        if let Some(limit) = faults.limit_qps {
            if let Some(until) = self.banned_until.filter(|until| *until > now) {
                let left_ms = (until - now).as_millis() as u64;
                return Err(ErrorAnswer::flow_control(
                    API_LIMIT,
                    left_ms.div_ceil(1000).max(1),
                ));
            }
            if let Some(horizon) = now.checked_sub(Duration::from_secs(1)) {
                while self.window.front().is_some_and(|t| *t <= horizon) {
                    self.window.pop_front();
                }
            }
            if self.window.len() >= limit as usize {
                self.banned_until = Some(now + Duration::from_secs(faults.ban_seconds));
                return Err(api_limit(faults.ban_seconds));
            }
            // Calls reach here slightly out of their arrival order: keep the window sorted.
            let later = self.window.iter().rev().take_while(|t| **t > now).count();
            self.window.insert(self.window.len() - later, now);
        }
        self.used_today += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_limit_bans_then_lets_through() {
        let faults = Faults {
            limit_qps: Some(2),
            ban_seconds: 3,
            ..Faults::default()
        };
        let mut flow = FlowControl::default();
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(flow.admit(&faults, t0, 0).is_ok());
        assert!(
            flow.admit(&faults, t0 + Duration::from_millis(10), 0)
                .is_ok()
        );
        let refused = flow
            .admit(&faults, t0 + Duration::from_millis(20), 0)
            .unwrap_err();
        assert_eq!(refused.code, 7);
        assert_eq!(refused.sub_code, Some(API_LIMIT));
        assert_eq!(
            refused.sub_msg.as_deref(),
            Some("This ban will last for 3 more seconds")
        );
        let during = flow
            .admit(&faults, t0 + Duration::from_millis(1_500), 0)
            .unwrap_err();
        assert_eq!(
            during.sub_msg.as_deref(),
            Some("This ban will last for 2 more seconds")
        );
        assert!(flow.admit(&faults, t0 + Duration::from_secs(4), 0).is_ok());
    }

    #[test]
    fn daily_quota_bans_until_gmt8_midnight_and_resets_next_day() {
        let faults = Faults {
            daily_quota: Some(2),
            ..Faults::default()
        };
        let mut flow = FlowControl::default();
        let now = Instant::now();
        // 2016-01-01 12:00:00 GMT+8 is 04:00:00 UTC: 12 hours to midnight GMT+8.
        let noon = 1_451_620_800;
        assert!(flow.admit(&faults, now, noon).is_ok());
        assert!(flow.admit(&faults, now, noon).is_ok());
        let refused = flow.admit(&faults, now, noon).unwrap_err();
        assert_eq!(refused.sub_code, Some(APP_LIMIT));
        assert_eq!(
            refused.sub_msg.as_deref(),
            Some("This ban will last for 43200 more seconds")
        );
        assert!(flow.admit(&faults, now, noon + 43_200).is_ok());
    }
}
