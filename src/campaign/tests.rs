//! Tests of the campaign file: the documented example, defaults, every kind of error with its
//! position, relative paths and secrets from the environment.

use super::*;

const SPEC_EXAMPLE: &str = r#"name = "spring-gift-2026"            # campaign identity; part of every idempotency key
api  = "tmall.nrt.certificate.send"
input   = "recipients.csv"           # paths are relative to this file
results = "spring-gift-2026.results.csv"   # default: <name>.results.csv
state   = "spring-gift-2026.db"            # default: <name>.db

[gateway]
url = "https://eco.taobao.com/router/rest"   # or "sim": start the built-in simulator in-process
app_key = "12345678"
sign_method = "hmac-sha256"          # md5 | hmac | hmac-sha256
timeout_ms = 10000
# secrets never live in this file: TOP_APP_SECRET and TOP_SESSION are read from the
# environment (names can be changed with app_secret_env / session_env)

[limits]
qps = 50                 # never exceeded in any one-second window
concurrency = 16         # requests in flight at most
max_attempts = 5         # per row, transient failures only
max_failure_rate = 0.5   # halt when permanent failures exceed this share ...
min_rows_for_halt = 200  # ... of at least this many finished rows
max_ban_wait_s = 300     # a flow-control ban longer than this (daily quota used up) halts the run

[params]                 # defaults for every row of this API; a CSV column of the same name overrides per row
channel = 7
out_id = 123
biz_code = "23"
"#;

const MINIMAL_SIM: &str = "name = \"n\"\napi = \"alibaba.alsc.right.decisionsend\"\ninput = \"in.csv\"\n\n[gateway]\nurl = \"sim\"\n";

fn parse(text: &str) -> Result<Campaign, CampaignError> {
    Campaign::parse(Path::new("samples/x.toml"), text)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn spec_example_parses() {
    let c = parse(SPEC_EXAMPLE).unwrap();
    assert_eq!(c.name, "spring-gift-2026");
    assert_eq!(c.api.method, "tmall.nrt.certificate.send");
    assert_eq!(c.input, Path::new("samples/recipients.csv"));
    assert_eq!(c.results, Path::new("samples/spring-gift-2026.results.csv"));
    assert_eq!(c.state, Path::new("samples/spring-gift-2026.db"));
    assert_eq!(c.encoding, None);
    assert_eq!(c.bom, None);
    let no_bom = MINIMAL_SIM.replace("input = \"in.csv\"", "input = \"in.csv\"\nbom = false");
    assert_eq!(parse(&no_bom).unwrap().bom, Some(false));
    assert_eq!(
        c.gateway.url,
        GatewayUrl::Http("https://eco.taobao.com/router/rest".into())
    );
    assert_eq!(c.gateway.app_key, "12345678");
    assert_eq!(c.gateway.sign_method, SignMethod::HmacSha256);
    assert_eq!(c.gateway.timeout, Duration::from_secs(10));
    assert_eq!(c.gateway.connect_timeout, Duration::from_secs(3));
    assert_eq!(
        c.limits,
        Limits {
            concurrency: Some(Concurrency::new(16).unwrap()),
            ..Limits::default()
        }
    );
    let params: Vec<(&str, &str)> = c
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        params,
        [("biz_code", "23"), ("channel", "7"), ("out_id", "123")]
    );
}

#[test]
fn defaults_fill_in() {
    let c = parse(MINIMAL_SIM).unwrap();
    assert_eq!(c.results, Path::new("samples/n.results.csv"));
    assert_eq!(c.state, Path::new("samples/n.db"));
    assert_eq!(c.gateway.url, GatewayUrl::Sim);
    assert_eq!(c.gateway.app_key, SIM_APP_KEY);
    assert_eq!(c.gateway.sign_method, SignMethod::HmacSha256);
    assert_eq!(c.gateway.app_secret_env, "TOP_APP_SECRET");
    assert_eq!(c.gateway.session_env, "TOP_SESSION");
    assert_eq!(c.limits, Limits::default());
    assert!(c.params.is_empty());
}

#[test]
fn paths_are_relative_to_the_campaign_file() {
    let text = MINIMAL_SIM.replace("in.csv", "data/in.csv");
    let c = Campaign::parse(Path::new("/srv/campaigns/a.toml"), &text).unwrap();
    assert_eq!(c.input, Path::new("/srv/campaigns/data/in.csv"));
    assert_eq!(c.state, Path::new("/srv/campaigns/n.db"));
    let c = Campaign::parse(
        Path::new("a.toml"),
        &text.replace("data/in.csv", "/abs/in.csv"),
    )
    .unwrap();
    assert_eq!(c.input, Path::new("/abs/in.csv"));
    assert_eq!(c.results, Path::new("n.results.csv"));
}

#[test]
fn load_reads_the_file_and_names_it_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, MINIMAL_SIM).unwrap();
    assert_eq!(
        Campaign::load(&path).unwrap().input,
        dir.path().join("in.csv")
    );
    let missing = Campaign::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(missing.to_string().contains("nope.toml"), "{missing}");
}

#[test]
fn numbers_and_floats_in_limits() {
    let c = parse(&format!(
        "{MINIMAL_SIM}[limits]\nqps = 2.5\nmax_failure_rate = 1\nmax_ban_wait_s = 0\nmin_rows_for_halt = 0\n"
    ))
    .unwrap();
    assert_eq!(c.limits.qps.get(), 2.5);
    assert_eq!(c.limits.max_failure_rate, 1.0);
    assert_eq!(c.limits.max_ban_wait, Duration::ZERO);
    // Unset: adaptive up to the ceiling.
    assert_eq!(c.limits.concurrency, None);
    assert_eq!(c.limits.max_concurrency.get(), 256);
    let capped = parse(&format!(
        "{MINIMAL_SIM}[limits]\nconcurrency = 16\nmax_concurrency = 64\n"
    ))
    .unwrap();
    assert_eq!(capped.limits.concurrency.map(Concurrency::get), Some(16));
    assert_eq!(capped.limits.max_concurrency.get(), 64);
}

#[test]
fn limit_errors_name_line_column_and_field() {
    let with = |limits: &str| error(&format!("{MINIMAL_SIM}[limits]\n{limits}\n"));
    assert_eq!(
        with("qps = 0"),
        "samples/x.toml:8:7: limits.qps: must be between 0.001 and 1000000"
    );
    assert!(with("qps = -1.5").ends_with("limits.qps: must be between 0.001 and 1000000"));
    assert!(with("qps = 1e-300").ends_with("limits.qps: must be between 0.001 and 1000000"));
    assert!(with("qps = nan").ends_with("limits.qps: is not a number"));
    assert!(with("qps = inf").ends_with("limits.qps: must be between 0.001 and 1000000"));
    assert!(with("qps = \"fast\"").ends_with("limits.qps: expected a number, found string"));
    assert_eq!(
        with("concurrency = 0"),
        "samples/x.toml:8:15: limits.concurrency: must be between 1 and 10000"
    );
    assert!(
        with("concurrency = 2305843009213693952")
            .ends_with("limits.concurrency: must be between 1 and 10000")
    );
    assert!(
        with("concurrency = 99999999999999999999999")
            .ends_with("limits.concurrency: must be between 1 and 10000")
    );
    assert!(with("concurrency = 1.5").ends_with("limits.concurrency: must be a whole number"));
    assert!(with("max_attempts = 0").ends_with("limits.max_attempts: must be between 1 and 1000"));
    assert!(
        with("max_attempts = 99999999999")
            .ends_with("limits.max_attempts: must be between 1 and 1000")
    );
    assert!(
        with("max_failure_rate = 1.5")
            .ends_with("limits.max_failure_rate: must be between 0 and 1")
    );
    assert!(
        with("min_rows_for_halt = -1")
            .ends_with("limits.min_rows_for_halt: must be between 0 and 1000000000000")
    );
    assert!(
        with("max_ban_wait_s = -1")
            .ends_with("limits.max_ban_wait_s: must be between 0 and 604800")
    );
    assert!(
        with("max_ban_wait_s = 1e300")
            .ends_with("limits.max_ban_wait_s: must be between 0 and 604800")
    );
    assert!(
        with("max_outage_s = 1e300").ends_with("limits.max_outage_s: must be between 0 and 604800")
    );
    assert!(
        with("max_issued = 0").ends_with("limits.max_issued: must be between 1 and 1000000000000")
    );
    assert_eq!(
        Campaign::parse(
            Path::new("x.toml"),
            &format!("{MINIMAL_SIM}[limits]\nmax_issued = 1000\n")
        )
        .unwrap()
        .limits
        .max_issued,
        Some(1000)
    );
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    let unknown = error(&format!("{MINIMAL_SIM}[limits]\nqsp = 5\n"));
    assert!(
        unknown.starts_with(
            "samples/x.toml:8:1: limits.qsp: unknown key (expected one of: qps, concurrency, \
             max_concurrency, max_attempts, max_failure_rate, min_rows_for_halt, max_ban_wait_s"
        ) && unknown.contains("max_issued")
            && unknown.contains("max_outage_s"),
        "{unknown}"
    );
    assert!(
        error(&format!("nmae = 1\n{MINIMAL_SIM}"))
            .starts_with("samples/x.toml:1:1: nmae: unknown key")
    );
    assert!(
        error(&MINIMAL_SIM.replace("url = \"sim\"", "url = \"sim\"\nproxy = \"x\""))
            .starts_with("samples/x.toml:7:1: gateway.proxy: unknown key")
    );
    assert!(
        error(&format!("{MINIMAL_SIM}[extra]\na = 1\n"))
            .starts_with("samples/x.toml:7:2: extra: unknown key")
    );
}

#[test]
fn secret_keys_point_to_the_environment_and_never_echo_values() {
    let e = error(&MINIMAL_SIM.replace("url = \"sim\"", "url = \"sim\"\napp_secret = \"hunter2\""));
    assert!(
        e.starts_with(
            "samples/x.toml:7:1: gateway.app_secret: secrets never live in the campaign file"
        ),
        "{e}"
    );
    assert!(
        e.contains("TOP_APP_SECRET") && !e.contains("hunter2"),
        "{e}"
    );
    let e = error(&format!("{MINIMAL_SIM}session = \"s3cr3t\"\n"));
    assert!(
        e.contains("gateway.session:") && e.contains("TOP_SESSION") && !e.contains("s3cr3t"),
        "{e}"
    );
    let e = error(&format!("secret = \"zz\"\n{MINIMAL_SIM}"));
    assert!(
        e.starts_with("samples/x.toml:1:1: secret: secrets never live") && !e.contains("zz"),
        "{e}"
    );
}

#[test]
fn required_keys_and_types() {
    assert_eq!(
        error("api = \"tmall.nrt.certificate.send\"\n"),
        "samples/x.toml:1:1: name: missing: the campaign's name is part of every request id"
    );
    assert!(error(&MINIMAL_SIM.replace("input = \"in.csv\"\n", "")).contains("input: missing"));
    assert!(
        error("name = \"n\"\napi = \"x.y\"\n")
            .starts_with("samples/x.toml:2:7: api: unknown API \"x.y\" (supported: ")
    );
    assert!(
        error("name = 5\n")
            .starts_with("samples/x.toml:1:8: name: expected a string, found integer")
    );
    assert!(error("name = \"a/b\"\n").contains("name: must not contain"));
    assert!(
        error("name = \" a\"\n").contains("name: must not have leading or trailing whitespace")
    );
    assert!(
        error(&MINIMAL_SIM.replace("\n[gateway]\nurl = \"sim\"\n", ""))
            .starts_with("samples/x.toml:1:1: gateway: missing")
    );
    assert!(
        error(&MINIMAL_SIM.replace("url = \"sim\"", "app_key = \"1\""))
            .starts_with("samples/x.toml:5:2: gateway.url: missing")
    );
    assert!(
        error(&MINIMAL_SIM.replace(
            "input = \"in.csv\"",
            "input = \"in.csv\"\nencoding = \"latin1\""
        ))
        .starts_with("samples/x.toml:4:12: encoding: unknown encoding \"latin1\"")
    );
    assert!(error(&MINIMAL_SIM.replace("in.csv", "")).contains("input: must not be empty"));
    assert!(
        error(&MINIMAL_SIM.replace("input = \"in.csv\"", "input = \"in.csv\"\nbom = \"yes\""))
            .starts_with("samples/x.toml:4:7: bom: expected true or false, found string")
    );
    assert!(
        error(&format!("limits = 3\n{MINIMAL_SIM}"))
            .contains("limits: expected a table, found integer")
    );
}

#[test]
fn gateway_values_are_checked() {
    let real = MINIMAL_SIM.replace("\"sim\"", "\"https://gw.example/router/rest\"");
    assert!(
        error(&real).starts_with(
            "samples/x.toml:5:2: gateway.app_key: missing: required for a real gateway"
        )
    );
    let real = format!("{real}app_key = 12345678\n");
    assert_eq!(parse(&real).unwrap().gateway.app_key, "12345678");
    assert!(
        error(&MINIMAL_SIM.replace("\"sim\"", "\"ftp://x\""))
            .starts_with("samples/x.toml:6:7: gateway.url: must be an http(s) URL")
    );
    for with_user in [
        "https://user:pw@gw.example/router/rest",
        "https://user@gw.example/router/rest",
        "http://:pw@127.0.0.1:1/router/rest",
    ] {
        let e = error(&MINIMAL_SIM.replace("\"sim\"", &format!("\"{with_user}\"")));
        assert!(
            e.starts_with(
                "samples/x.toml:6:7: gateway.url: must not carry a user name or password"
            ),
            "{e}"
        );
        assert!(!e.contains("pw"), "{e}");
    }
    assert!(
        error(&format!("{MINIMAL_SIM}sign_method = \"sha1\"\n"))
            .contains("gateway.sign_method: unknown sign_method \"sha1\"")
    );
    assert!(
        error(&format!("{MINIMAL_SIM}timeout_ms = 0\n"))
            .contains("gateway.timeout_ms: must be between 1 and 600000")
    );
    assert!(
        error(&format!("{MINIMAL_SIM}app_secret_env = \"MY SECRET\"\n"))
            .contains("gateway.app_secret_env: must be an environment variable name")
    );
    let c = parse(&format!(
        "{MINIMAL_SIM}sign_method = \"md5\"\nconnect_timeout_ms = 250\n"
    ))
    .unwrap();
    assert_eq!(c.gateway.sign_method, SignMethod::Md5);
    assert_eq!(c.gateway.connect_timeout, Duration::from_millis(250));
}

#[test]
fn syntax_errors_have_positions() {
    let e = error("name = \"n\"\napi = \n");
    assert!(e.starts_with("samples/x.toml:2:"), "{e}");
}

#[test]
fn params_are_checked_against_the_api() {
    let with = |params: &str| parse(&format!("{MINIMAL_SIM}[params]\n{params}\n"));
    let c = with("scene_code = \"s\"\nbiz_code = 23\nact_codes = [\"a\", \"b\"]\nright_act_list = '[{\"actCode\":\"x\"}]'").unwrap();
    assert_eq!(c.params["biz_code"], "23");
    assert_eq!(c.params["act_codes"], r#"["a","b"]"#);
    assert_eq!(c.params["right_act_list"], r#"[{"actCode":"x"}]"#);
    let err = |params: &str| with(params).unwrap_err().to_string();
    assert!(
        err("request_id = \"r\"")
            .starts_with("samples/x.toml:8:1: params.request_id: cannot be a campaign default")
    );
    assert!(err("alipay_id = \"2088111111111111\"").contains("params.alipay_id: is the recipient"));
    assert!(err("channel = 7").contains("params.channel: not a param of alibaba.alsc.right.decisionsend (expected one of: right_act_list, scene_code, act_codes, biz_code)"));
    assert!(
        err("act_codes = \"[1\"")
            .starts_with("samples/x.toml:8:13: params.act_codes: malformed JSON")
    );
    assert!(err("act_codes = '{}'").contains("params.act_codes: must be a JSON array"));
    assert!(
        err("scene_code = 1.5")
            .contains("params.scene_code: expected a string or an integer, found float")
    );
    assert!(err("scene_code = \"\"").contains("params.scene_code: must not be empty"));
    let tmall = |params: &str| {
        Campaign::parse(
            Path::new("x.toml"),
            &format!(
                "{}[params]\n{params}\n",
                MINIMAL_SIM.replace(
                    "alibaba.alsc.right.decisionsend",
                    "tmall.nrt.certificate.send"
                )
            ),
        )
    };
    assert!(
        tmall("channel = \"seven\"")
            .unwrap_err()
            .to_string()
            .contains("params.channel: must be a whole number")
    );
    assert!(
        tmall("channel = [1]")
            .unwrap_err()
            .to_string()
            .contains("params.channel: expected a string or an integer, found array")
    );
    assert_eq!(tmall("out_id = 0x10").unwrap().params["out_id"], "16");
}

#[test]
fn params_fingerprint_follows_api_and_params_only() {
    let a = parse(SPEC_EXAMPLE).unwrap();
    let mut b = a.clone();
    b.limits.qps = Qps::new(1.0).unwrap();
    b.input = PathBuf::from("elsewhere.csv");
    assert_eq!(a.params_fingerprint(), b.params_fingerprint());
    assert_eq!(a.params_fingerprint().len(), 32);
    b.params.insert("channel".into(), "8".into());
    assert_ne!(a.params_fingerprint(), b.params_fingerprint());
    let mut c = a.clone();
    c.params.insert("biz_code".into(), "2".into());
    c.params.insert("channel".into(), "37".into());
    let mut d = a.clone();
    d.params.insert("biz_code".into(), "2\n".into());
    d.params.insert("channel".into(), "7".into());
    assert_ne!(c.params_fingerprint(), d.params_fingerprint());
}

// Each test uses its own variable names, so tests running in parallel never race on them.
#[test]
fn secrets_come_from_the_named_variables() {
    let text = SPEC_EXAMPLE.replace(
        "timeout_ms = 10000",
        "app_secret_env = \"CAMPAIGN_TEST_SECRET_A\"\nsession_env = \"CAMPAIGN_TEST_SESSION_A\"",
    );
    let c = parse(&text).unwrap();
    let e = c.secrets().unwrap_err().to_string();
    assert!(
        e.starts_with("samples/x.toml: environment variable CAMPAIGN_TEST_SECRET_A: not set"),
        "{e}"
    );
    // SAFETY: only this test reads or writes these variables.
    unsafe { std::env::set_var("CAMPAIGN_TEST_SECRET_A", "app-secret-value") };
    let e = c.secrets().unwrap_err().to_string();
    assert!(
        e.contains("CAMPAIGN_TEST_SESSION_A: not set; tmall.nrt.certificate.send needs"),
        "{e}"
    );
    assert!(!e.contains("app-secret-value"));
    // SAFETY: as above.
    unsafe { std::env::set_var("CAMPAIGN_TEST_SESSION_A", "session-value") };
    let s = c.secrets().unwrap();
    assert_eq!(s.app_secret.expose(), "app-secret-value");
    assert_eq!(
        s.session.as_ref().map(Secret::expose),
        Some("session-value")
    );
    assert!(!format!("{s:?}").contains("value"));
}

#[test]
fn sim_secrets_default_and_sessionless_api_may_lack_one() {
    let sim = parse(&format!(
        "{MINIMAL_SIM}app_secret_env = \"CAMPAIGN_TEST_SECRET_B\"\nsession_env = \"CAMPAIGN_TEST_SESSION_B\"\n"
    ))
    .unwrap();
    let s = sim.secrets().unwrap();
    assert_eq!(s.app_secret.expose(), SIM_APP_SECRET);
    assert_eq!(s.session.as_ref().map(Secret::expose), Some(SIM_SESSION));

    let mut real = sim.clone();
    real.gateway.url = GatewayUrl::Http("http://127.0.0.1:1/router/rest".into());
    real.gateway.app_secret_env = "CAMPAIGN_TEST_SECRET_C".into();
    real.gateway.session_env = "CAMPAIGN_TEST_SESSION_C".into();
    // SAFETY: only this test reads or writes these variables.
    unsafe { std::env::set_var("CAMPAIGN_TEST_SECRET_C", "x") };
    let s = real.secrets().unwrap();
    assert!(s.session.is_none(), "alsc needs no session");
}

#[test]
fn blank_secrets_are_named_empty_not_unset() {
    let text = SPEC_EXAMPLE.replace(
        "timeout_ms = 10000",
        "app_secret_env = \"CAMPAIGN_TEST_SECRET_D\"\nsession_env = \"CAMPAIGN_TEST_SESSION_D\"",
    );
    let c = parse(&text).unwrap();
    for blank in ["", "  \t"] {
        // SAFETY: only this test reads or writes these variables.
        unsafe { std::env::set_var("CAMPAIGN_TEST_SECRET_D", blank) };
        let e = c.secrets().unwrap_err().to_string();
        assert!(
            e.contains("CAMPAIGN_TEST_SECRET_D: is empty; it must hold the app secret"),
            "{e}"
        );
    }
    // SAFETY: as above.
    unsafe {
        std::env::set_var("CAMPAIGN_TEST_SECRET_D", "app-secret");
        std::env::set_var("CAMPAIGN_TEST_SESSION_D", " ");
    };
    let e = c.secrets().unwrap_err().to_string();
    assert!(
        e.contains("CAMPAIGN_TEST_SESSION_D: is empty; tmall"),
        "{e}"
    );
}

#[test]
fn command_line_overrides_replace_the_files_values_and_name_their_flag() {
    let mut c = parse(MINIMAL_SIM).unwrap();
    let e = parse(MINIMAL_SIM)
        .unwrap()
        .apply(&Overrides {
            encoding: Some("latin-9".to_owned()),
            ..Overrides::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--encoding: "), "{e}");
    c.apply(&Overrides {
        results: Some("elsewhere.csv".into()),
        bom: Some(true),
        qps: Some(Qps::new(2.5).unwrap()),
        concurrency: Some(Concurrency::new(3).unwrap()),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(c.results, Path::new("elsewhere.csv"));
    assert_eq!(c.bom, Some(true));
    assert_eq!(
        (
            c.limits.qps.get(),
            c.limits.concurrency.map(Concurrency::get)
        ),
        (2.5, Some(3))
    );
    assert_eq!(c.input, Path::new("samples/in.csv"));
}

#[test]
fn report_is_a_switch_or_a_path() {
    let with = |value: &str| MINIMAL_SIM.replace("input =", &format!("report = {value}\ninput ="));
    assert_eq!(parse(MINIMAL_SIM).unwrap().report, None);
    assert_eq!(parse(&with("false")).unwrap().report, None);
    assert_eq!(
        parse(&with("true")).unwrap().report,
        Some(ReportFile::BesideResults)
    );
    assert_eq!(
        parse(&with("\"out/r.html\"")).unwrap().report,
        Some(ReportFile::At("samples/out/r.html".into()))
    );
    assert_eq!(
        error(&with("1")),
        "samples/x.toml:3:10: report: expected true, false or a path, found integer"
    );
}
