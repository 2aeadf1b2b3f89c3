//! Secrets come only from the environment: keys that look like secrets are refused without
//! echoing their value, the named variables are read, and blank or missing ones are named.

use super::*;

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
