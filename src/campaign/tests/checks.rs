//! Every kind of error in a campaign file, each with its position and field: limits, unknown
//! and required keys, types, gateway values, syntax, and params against the API.

use super::*;

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
