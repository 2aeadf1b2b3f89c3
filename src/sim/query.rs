//! `tmall.nrt.certificate.query` from the simulator's own records: every certificate it issued
//! (and those it was told existed before the campaign, [`Preissued`]), indexed by `open_id`
//! and code, filtered and paged as a query asks, hidden for the configured lag after issuing.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::call::CertificateQuery;
use crate::top::params::format_timestamp;

/// How long a simulated certificate is valid.
pub(crate) const CERTIFICATE_DAYS: i64 = 30;

/// A certificate issued before the simulator started (`--preissued`): the same recipient and
/// template a campaign row may have, issued `age` earlier. Visible to queries at once, never
/// counted as an issuance of the campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preissued {
    pub open_id: String,
    pub biz_code: String,
    pub out_id: i64,
    pub channel: i64,
    /// How long before the simulator started it was issued.
    pub age: Duration,
}

/// The age of a pre-issued certificate that names none: one day.
const DEFAULT_PREISSUED_AGE: Duration = Duration::from_secs(86_400);
/// The oldest a pre-issued certificate may be: a year.
const MAX_PREISSUED_AGE_S: u64 = 366 * 86_400;

impl FromStr for Preissued {
    type Err = String;

    /// `open_id=X,biz_code=Y,out_id=N,channel=N[,age_s=N]`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for part in text.split(',') {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not NAME=VALUE"))?;
            let name = name.trim();
            if !["open_id", "biz_code", "out_id", "channel", "age_s"].contains(&name) {
                return Err(format!(
                    "unknown field {name:?} (expected open_id, biz_code, out_id, channel, age_s)"
                ));
            }
            fields.insert(name, value.trim());
        }
        let text_field = |name: &str| -> Result<String, String> {
            match fields.get(name) {
                Some(v) if !v.is_empty() => Ok((*v).to_owned()),
                _ => Err(format!("{name} is required")),
            }
        };
        let number = |name: &str| -> Result<i64, String> {
            text_field(name)?
                .parse()
                .map_err(|_| format!("{name} is not a whole number"))
        };
        let age = match fields.get("age_s") {
            None => DEFAULT_PREISSUED_AGE,
            Some(v) => match v.parse::<u64>() {
                Ok(s) if s <= MAX_PREISSUED_AGE_S => Duration::from_secs(s),
                _ => return Err(format!("age_s must be from 0 to {MAX_PREISSUED_AGE_S}")),
            },
        };
        Ok(Preissued {
            open_id: text_field("open_id")?,
            biz_code: text_field("biz_code")?,
            out_id: number("out_id")?,
            channel: number("channel")?,
            age,
        })
    }
}

/// One certificate in the books.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Certificate {
    pub code: String,
    pub open_id: String,
    /// As the request sent it (a JSON number).
    pub out_id: Value,
    pub channel: Value,
    pub biz_code: Option<String>,
    /// When it was issued, on the gateway's clock.
    pub created: DateTime<Utc>,
}

impl Certificate {
    /// The item of a query answer (`nrt_certificate_instance_response_dto`): `out_id` as a
    /// string and `status` and `channel` as numbers, as in the published SDK model.
    fn item(&self) -> Value {
        let created = format_timestamp(self.created);
        let out_id = match &self.out_id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        json!({
            "certificate_code": self.code,
            "open_id": self.open_id,
            "out_id": out_id,
            "channel": self.channel,
            "status": 0,
            "create_time": created,
            "start_time": created,
            "end_time": format_timestamp(self.created + chrono::Duration::days(CERTIFICATE_DAYS)),
            "modified_time": created,
        })
    }
}

/// Every certificate, in issue order, with the indexes a query uses.
#[derive(Debug, Default)]
pub(crate) struct Certificates {
    all: Vec<(Certificate, Instant)>,
    by_open_id: HashMap<String, Vec<usize>>,
    by_code: HashMap<String, usize>,
}

/// One page of a query's matches.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Page {
    pub items: Vec<Certificate>,
    pub total: usize,
    pub page_size: u32,
    pub current_page: u32,
}

impl Certificates {
    /// Books a certificate that queries see from `visible_at` on.
    pub(crate) fn add(&mut self, certificate: Certificate, visible_at: Instant) {
        let index = self.all.len();
        self.by_open_id
            .entry(certificate.open_id.clone())
            .or_default()
            .push(index);
        self.by_code.insert(certificate.code.clone(), index);
        self.all.push((certificate, visible_at));
    }

    /// Every certificate, in issue order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Certificate> {
        self.all.iter().map(|(c, _)| c)
    }

    /// The certificates matching every filter of `query` and visible at `now`, oldest first,
    /// paged as asked.
    pub(crate) fn query(&self, query: &CertificateQuery, now: Instant) -> Page {
        let candidates: Vec<usize> = if query.codes.is_empty() {
            query
                .open_id
                .as_ref()
                .and_then(|id| self.by_open_id.get(id))
                .cloned()
                .unwrap_or_default()
        } else {
            let mut found: Vec<usize> = query
                .codes
                .iter()
                .filter_map(|code| self.by_code.get(code).copied())
                .collect();
            found.sort_unstable();
            found.dedup();
            found
        };
        let matches: Vec<&Certificate> = candidates
            .into_iter()
            .map(|i| &self.all[i])
            .filter(|(_, visible_at)| *visible_at <= now)
            .map(|(certificate, _)| certificate)
            .filter(|c| query.open_id.as_ref().is_none_or(|id| *id == c.open_id))
            .filter(|c| {
                query
                    .biz_code
                    .as_ref()
                    .is_none_or(|biz| Some(biz) == c.biz_code.as_ref())
            })
            .collect();
        let size = query.page_size as usize;
        let skip = (query.current_page as usize - 1).saturating_mul(size);
        Page {
            total: matches.len(),
            items: matches.into_iter().skip(skip).take(size).cloned().collect(),
            page_size: query.page_size,
            current_page: query.current_page,
        }
    }
}

/// The fields of a query answer, in simplified form (bare `data_list`); `data_list` is left
/// out when the page is empty.
pub(crate) fn render(page: &Page) -> Map<String, Value> {
    let mut model = Map::new();
    if !page.items.is_empty() {
        let items = page.items.iter().map(Certificate::item).collect();
        model.insert("data_list".into(), Value::Array(items));
    }
    model.insert("page_size".into(), page.page_size.to_string().into());
    model.insert("current_page".into(), page.current_page.to_string().into());
    model.insert("total_item".into(), page.total.to_string().into());
    let mut result = Map::new();
    result.insert("code".into(), "0".into());
    result.insert("message".into(), "success".into());
    result.insert("model".into(), Value::Object(model));
    let mut fields = Map::new();
    fields.insert("result".into(), Value::Object(result));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(code: &str, open_id: &str, biz: &str) -> Certificate {
        Certificate {
            code: code.into(),
            open_id: open_id.into(),
            out_id: 7.into(),
            channel: 1.into(),
            biz_code: Some(biz.into()),
            created: Utc::now(),
        }
    }

    fn query(open_id: Option<&str>, codes: &[&str], page_size: u32, page: u32) -> CertificateQuery {
        CertificateQuery {
            open_id: open_id.map(str::to_owned),
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            biz_code: Some("B".into()),
            page_size,
            current_page: page,
        }
    }

    fn codes(page: &Page) -> Vec<&str> {
        page.items.iter().map(|c| c.code.as_str()).collect()
    }

    #[test]
    fn filters_pages_and_hides_until_visible() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut books = Certificates::default();
        for i in 1..=5 {
            books.add(certificate(&format!("c{i}"), "A", "B"), t0);
        }
        books.add(certificate("other-biz", "A", "X"), t0);
        books.add(certificate("other-user", "Z", "B"), t0);
        books.add(certificate("hidden", "A", "B"), later);

        let first = books.query(&query(Some("A"), &[], 2, 1), t0);
        assert_eq!((codes(&first), first.total), (vec!["c1", "c2"], 5));
        let last = books.query(&query(Some("A"), &[], 2, 3), t0);
        assert_eq!(codes(&last), ["c5"]);
        assert!(
            books
                .query(&query(Some("A"), &[], 2, 4), t0)
                .items
                .is_empty()
        );
        assert_eq!(books.query(&query(Some("A"), &[], 100, 1), later).total, 6);

        let by_code = books.query(&query(None, &["c3", "other-user", "nope"], 20, 1), t0);
        assert_eq!(codes(&by_code), ["c3", "other-user"]);
        let both = books.query(&query(Some("A"), &["c3", "other-user"], 20, 1), t0);
        assert_eq!(codes(&both), ["c3"]);
    }

    #[test]
    fn answer_has_the_sdk_model_with_strings_for_paging() {
        let page = Page {
            items: vec![certificate("c1", "A", "B")],
            total: 1,
            page_size: 20,
            current_page: 1,
        };
        let fields = Value::Object(render(&page));
        let model = &fields["result"]["model"];
        assert_eq!(fields["result"]["code"], "0");
        assert_eq!(model["total_item"], "1");
        assert_eq!(model["page_size"], "20");
        let item = &model["data_list"][0];
        assert_eq!(item["out_id"], "7");
        assert_eq!(item["channel"], 1);
        assert_eq!(item["status"], 0);
        assert!(item["create_time"].is_string() && item["end_time"].is_string());
        let empty = Value::Object(render(&Page {
            items: vec![],
            total: 0,
            ..page
        }));
        assert!(empty["result"]["model"].get("data_list").is_none());
        assert_eq!(empty["result"]["model"]["total_item"], "0");
    }

    #[test]
    fn preissued_parses_and_says_what_is_wrong() {
        let p: Preissued = "open_id=A, biz_code=23,out_id=5,channel=7".parse().unwrap();
        assert_eq!(
            p,
            Preissued {
                open_id: "A".into(),
                biz_code: "23".into(),
                out_id: 5,
                channel: 7,
                age: DEFAULT_PREISSUED_AGE
            }
        );
        let p: Preissued = "open_id=A,biz_code=23,out_id=5,channel=7,age_s=0"
            .parse()
            .unwrap();
        assert_eq!(p.age, Duration::ZERO);
        for bad in [
            "open_id=A",
            "open_id=A,biz_code=23,out_id=x,channel=7",
            "open_id=A,biz_code=23,out_id=5,channel=7,age_s=-1",
            "open_id=A,biz_code=23,out_id=5,channel=7,color=red",
            "A,23,5,7",
        ] {
            assert!(bad.parse::<Preissued>().is_err(), "{bad}");
        }
    }
}
