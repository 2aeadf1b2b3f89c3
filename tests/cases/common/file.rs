//! Campaign files and input CSVs as the tests write them: a builder with named setters over
//! the two issuing APIs, and rows of recipients.

use std::fmt;

/// A campaign file: `name = "t"` on tmall or `name = "a"` on alsc, with `in.csv`, `out.csv` and
/// `state.db` beside it; each setter changes one thing. Written with `{}` (it is [`Display`]).
///
/// [`Display`]: fmt::Display
#[derive(Clone)]
pub struct CampaignFile {
    name: &'static str,
    api: &'static str,
    input: String,
    results: String,
    top: Vec<String>,
    url: String,
    sign_method: &'static str,
    timeout_ms: u64,
    limits: String,
    params: Vec<(String, String)>,
    tables: Vec<String>,
}

impl CampaignFile {
    /// `tmall.nrt.certificate.send` against `url`, signed with hmac-sha256, params
    /// `channel = 7`, `out_id = 123`, `biz_code = "23"`.
    pub fn tmall(url: &str) -> CampaignFile {
        CampaignFile {
            name: "t",
            api: "tmall.nrt.certificate.send",
            sign_method: "hmac-sha256",
            params: vec![
                ("channel".into(), "7".into()),
                ("out_id".into(), "123".into()),
                ("biz_code".into(), "\"23\"".into()),
            ],
            ..CampaignFile::base(url)
        }
    }

    /// `alibaba.alsc.right.decisionsend` against `url`, signed with md5, params
    /// `scene_code = "scene"`, `biz_code = "ISV-T"`.
    pub fn alsc(url: &str) -> CampaignFile {
        CampaignFile {
            name: "a",
            api: "alibaba.alsc.right.decisionsend",
            sign_method: "md5",
            params: vec![
                ("scene_code".into(), "\"scene\"".into()),
                ("biz_code".into(), "\"ISV-T\"".into()),
            ],
            ..CampaignFile::base(url)
        }
    }

    fn base(url: &str) -> CampaignFile {
        CampaignFile {
            name: "",
            api: "",
            input: "in.csv".into(),
            results: "out.csv".into(),
            top: Vec::new(),
            url: url.into(),
            sign_method: "",
            timeout_ms: 2000,
            limits: String::new(),
            params: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// The lines of `[limits]`, e.g. `"qps = 200\nconcurrency = 8"`.
    pub fn limits(mut self, lines: &str) -> CampaignFile {
        self.limits = lines.into();
        self
    }

    /// A top-level key, e.g. `"report = true"` (after `state`).
    pub fn set(mut self, line: &str) -> CampaignFile {
        self.top.push(line.into());
        self
    }

    /// `reconcile = false`: uncertain rows stay uncertain, nothing is asked about them.
    pub fn no_reconcile(self) -> CampaignFile {
        self.set("reconcile = false")
    }

    pub fn name(mut self, name: &'static str) -> CampaignFile {
        self.name = name;
        self
    }

    /// Another API (its params are left to [`CampaignFile::param`]).
    pub fn api(mut self, api: &'static str) -> CampaignFile {
        self.api = api;
        self
    }

    pub fn input(mut self, path: &str) -> CampaignFile {
        self.input = path.into();
        self
    }

    pub fn results(mut self, path: &str) -> CampaignFile {
        self.results = path.into();
        self
    }

    pub fn sign_method(mut self, method: &'static str) -> CampaignFile {
        self.sign_method = method;
        self
    }

    pub fn timeout_ms(mut self, ms: u64) -> CampaignFile {
        self.timeout_ms = ms;
        self
    }

    /// Sets a `[params]` default (`value` as TOML), or with `None` removes it.
    pub fn param(mut self, key: &str, value: Option<&str>) -> CampaignFile {
        let at = self.params.iter().position(|(k, _)| k == key);
        match (at, value) {
            (Some(at), Some(value)) => self.params[at].1 = value.into(),
            (Some(at), None) => {
                self.params.remove(at);
            }
            (None, Some(value)) => self.params.push((key.into(), value.into())),
            (None, None) => {}
        }
        self
    }

    /// A table after `[params]`, e.g. `table("notify", "url = \"…\"")`.
    pub fn table(mut self, name: &str, body: &str) -> CampaignFile {
        self.tables.push(format!("[{name}]\n{body}\n"));
        self
    }
}

impl fmt::Display for CampaignFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "name = \"{}\"", self.name)?;
        writeln!(f, "api = \"{}\"", self.api)?;
        writeln!(f, "input = \"{}\"", self.input)?;
        writeln!(f, "results = \"{}\"", self.results)?;
        writeln!(f, "state = \"state.db\"")?;
        for line in &self.top {
            writeln!(f, "{line}")?;
        }
        writeln!(f, "\n[gateway]\nurl = \"{}\"", self.url)?;
        writeln!(f, "app_key = \"10000001\"")?;
        writeln!(f, "sign_method = \"{}\"", self.sign_method)?;
        writeln!(f, "timeout_ms = {}", self.timeout_ms)?;
        writeln!(f, "\n[limits]\n{}", self.limits)?;
        writeln!(f, "\n[params]")?;
        for (key, value) in &self.params {
            writeln!(f, "{key} = {value}")?;
        }
        for table in &self.tables {
            write!(f, "\n{table}")?;
        }
        Ok(())
    }
}

/// A tmall campaign file against `url`, with `limits` lines in `[limits]`.
pub fn tmall_campaign(url: &str, limits: &str) -> String {
    CampaignFile::tmall(url).limits(limits).to_string()
}

/// An alsc campaign file against `url`, with `limits` lines in `[limits]`.
pub fn alsc_campaign(url: &str, limits: &str) -> String {
    CampaignFile::alsc(url).limits(limits).to_string()
}

/// `open_id` rows `P00001 ..` with an extra column.
pub fn tmall_rows(n: usize) -> String {
    let mut csv = String::from("open_id,note\n");
    for i in 1..=n {
        csv.push_str(&format!("P{i:05},note {i}\n"));
    }
    csv
}

/// `alipay_id` rows `2088000000100001 ..`.
pub fn alsc_rows(n: usize) -> String {
    let mut csv = String::from("alipay_id,note\n");
    for i in 1..=n {
        csv.push_str(&format!("2088{:012},note {i}\n", 100_000 + i));
    }
    csv
}
