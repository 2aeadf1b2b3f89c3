//! The campaign file as a whole: the documented example, defaults, paths relative to the file,
//! loading, `report`, and command-line overrides.

use super::*;

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
