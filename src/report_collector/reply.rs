//! The collector's answer, the same in every host: 204 for an accepted report, else the rejection's status and
//! fixed text (never anything from the request), with `Allow: POST` for a wrong method.

use super::Rejection;

/// Status, headers and body of the reply to a request for the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorReply {
    pub status: u16,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static str,
}

impl CollectorReply {
    pub fn new(outcome: Result<(), Rejection>) -> CollectorReply {
        let rejection = match outcome {
            Ok(()) => {
                return CollectorReply {
                    status: 204,
                    headers: &[],
                    body: "",
                }
            }
            Err(rejection) => rejection,
        };
        let headers: &'static [(&'static str, &'static str)] = if rejection == Rejection::Method {
            &[("allow", "POST"), ("content-type", "text/plain")]
        } else {
            &[("content-type", "text/plain")]
        };
        CollectorReply {
            status: rejection.status(),
            headers,
            body: rejection.message(),
        }
    }
}
