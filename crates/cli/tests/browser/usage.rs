//! The pages after the devices: Usage (a backup, a restart), Billing,
//! Account, signing out, another account at the first one's door, and the
//! instance deleted at the end.

use std::time::{Duration, Instant};

use crate::api::Api;
use crate::session::Browser;
use crate::{Context, GRANT, PASSWORD};

/// Usage: Back up now lists a new backup; Restart gateway runs a new one.
pub(crate) async fn backup_and_restart(b: &Browser, api: &Api) {
    let minute = Duration::from_secs(60);

    // Usage: a backup, then a restart.
    b.click(r#"nav a[href="/console/usage"]"#).await;
    b.wait_for_path("/console/usage", minute).await;
    b.wait_for_text("#gateway-state", "running", minute).await;
    let backups_before = b.texts("main table tbody tr").await.len();
    b.screenshot("usage").await;
    b.submit(r#"form[action="/console/usage/backup"]"#).await;
    b.wait_for_text("p.notice", "Backup taken.", Duration::from_secs(120))
        .await;
    let backups = b.texts("main table tbody tr").await;
    assert_eq!(
        backups.len(),
        backups_before + 1,
        "the new backup is listed: {backups:?}"
    );
    b.screenshot("usage-backup").await;

    let gateway_before = api.gateway_pid().await.expect("a gateway pid");
    b.submit(r#"form[action="/console/usage/restart"]"#).await;
    b.wait_for_text(
        "p.notice",
        "The gateway restarted.",
        Duration::from_secs(120),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = b.text("#gateway-state").await;
        if state.as_deref() == Some("running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway is not running again within 120 s: {state:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        b.goto("/console/usage").await;
    }
    let gateway_after = api.gateway_pid().await.expect("a gateway pid");
    assert_ne!(gateway_after, gateway_before, "a new gateway process");
    b.screenshot("usage-restarted").await;
}

/// Billing shows the month's grant; Account; sign out closes the console;
/// another account is refused at the first one's door; the instance is
/// deleted and no runtime is left.
pub(crate) async fn billing_to_sign_out(
    b: &Browser,
    ctx: &Context,
    api: &Api,
    user: &str,
    gateway_url: &str,
) {
    let minute = Duration::from_secs(60);

    // Billing: the month's grant.
    b.click(r#"nav a[href="/console/billing"]"#).await;
    b.wait_for_path("/console/billing", minute).await;
    let balance = b.wait_for_text("#balance", "$", minute).await;
    assert_eq!(balance, GRANT, "the balance after the monthly grant");
    b.screenshot("billing").await;

    // Account.
    b.click(r#"nav a[href="/console/account"]"#).await;
    b.wait_for_path("/console/account", minute).await;
    b.wait_for_text("code#user-id", user, minute).await;
    b.screenshot("account").await;

    // Sign out: back on the sign-in page, and the console is closed.
    b.submit(r#"form[action="/console/sign-out"]"#).await;
    b.wait_for_path("/console/sign-in", minute).await;
    b.wait_for_text("h1", "Sign in", minute).await;
    b.screenshot("signed-out").await;
    b.goto("/console/usage").await;
    b.wait_for_path("/console/sign-in", minute).await;

    // Another account, signed in, is refused at the first one's door.
    b.goto("/console/sign-up").await;
    b.fill("#email", "someone-else@example.com").await;
    b.fill("#password", PASSWORD).await;
    b.submit(r#"form[action="/console/sign-up"]"#).await;
    b.wait_for_path("/console", minute).await;
    b.client.goto(gateway_url).await.unwrap();
    b.wait_for_text("main", "Sign in to the console", minute)
        .await;
    b.screenshot("control-ui-other-account").await;

    // Delete the instance so that no runtime is left.
    let (status, deleted) = api
        .call(reqwest::Method::DELETE, "/api/openclaw/instance")
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["data"]["instance"]["status"], "deleted");
    assert!(
        ctx.runtimes().is_empty(),
        "no runtime or gateway left: {:?}",
        ctx.runtimes()
    );
}
