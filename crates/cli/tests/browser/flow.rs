//! The flow, step by step in the order a person takes it: sign up, the
//! Account page, Create until Ready, the overview; then the devices
//! ([`crate::devices`]) and the other pages ([`crate::usage`]).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::{loopback_client, Api};
use crate::session::Browser;
use crate::{devices, usage, Context, EMAIL, PASSWORD};

/// The whole flow; returns what did not work in the live updates.
pub(crate) async fn flow(b: Browser, ctx: Context) -> Vec<String> {
    let mut live_problems = Vec::new();
    let (api, user) = sign_up(&b, &ctx, &mut live_problems).await;
    let instance = create(&b, &api, &user, &mut live_problems).await;
    let (port, gateway_url) = overview_ready(&b, &ctx, &instance).await;
    let gateway_token =
        devices::pair_a_device(&b, &api, &user, &port, &gateway_url, &mut live_problems).await;
    devices::control_ui(&b, &api, &gateway_url, &gateway_token).await;
    usage::backup_and_restart(&b, &api).await;
    usage::billing_to_sign_out(&b, &ctx, &api, &user, &gateway_url).await;
    live_problems
}

/// Sign up, the overview and its sidebar, then the Account page's user id;
/// the API as that user.
async fn sign_up(b: &Browser, ctx: &Context, live_problems: &mut Vec<String>) -> (Api, String) {
    let minute = Duration::from_secs(60);

    // Sign up.
    b.goto("/console/sign-up").await;
    b.wait_for_text("h1", "Sign up", minute).await;
    b.screenshot("sign-up").await;
    b.fill("#email", EMAIL).await;
    b.fill("#password", PASSWORD).await;
    b.submit(r#"form[action="/console/sign-up"]"#).await;
    b.wait_for_path("/console", minute).await;
    b.wait_for_text("main h1", "OpenClaw", minute).await;
    b.wait_for_text("#instance-status", "Not created", minute)
        .await;
    b.wait_for_text("nav", EMAIL, minute).await;
    let links = b
        .eval(
            "return Array.from(document.querySelectorAll('nav a'), a => a.getAttribute('href'));",
            vec![],
        )
        .await;
    assert_eq!(
        links,
        json!([
            "/console",
            "/console/create",
            "/console/chat",
            "/console/security",
            "/console/usage",
            "/console/billing",
            "/console/account"
        ]),
        "the sidebar"
    );
    b.screenshot("overview").await;
    if !b.live().await {
        live_problems.push(
            "console.js did not run on the overview: <html data-live> is not \"on\"".to_owned(),
        );
    }

    // The Account page names the user id the control surface knows the user by.
    b.click(r#"nav a[href="/console/account"]"#).await;
    b.wait_for_path("/console/account", minute).await;
    let user = b.wait_for_text("code#user-id", "-", minute).await;
    assert!(uuid::Uuid::parse_str(&user).is_ok(), "a user id: {user:?}");
    let api = Api {
        http: loopback_client(),
        base: ctx.base.clone(),
        user: user.clone(),
    };
    assert_eq!(
        api.control(&format!("/control/openclaw/instance?user_id={user}"))
            .await,
        Value::Null,
        "no instance before Create"
    );
    (api, user)
}

/// Create: the stepper reaches Ready without a page load; the instance as
/// the control surface shows it.
async fn create(b: &Browser, api: &Api, user: &str, live_problems: &mut Vec<String>) -> Value {
    let minute = Duration::from_secs(60);

    // Create: the stepper moves to Ready in the same document.
    b.click(r#"nav a[href="/console/create"]"#).await;
    b.wait_for_path("/console/create", minute).await;
    b.wait_for_text("#instance-status", "Not created", minute)
        .await;
    let live_on_create = b.live().await;
    b.mark_document().await;
    let started = Instant::now();
    b.submit(r#"form[action="/console/create"]"#).await;
    let mut seen_current = Vec::new();
    let mut provisioning_shot = false;
    let deadline = started + Duration::from_secs(240);
    loop {
        let badge = b.text("#instance-status .badge").await.unwrap_or_default();
        let steps = b
            .eval(
                "return Array.from(document.querySelectorAll('ol.stepper li'), \
                 li => [li.textContent.trim(), li.className]);",
                vec![],
            )
            .await;
        for step in steps.as_array().into_iter().flatten() {
            if step[1] == "current" && !seen_current.contains(&step[0]) {
                seen_current.push(step[0].clone());
            }
        }
        if badge == "Provisioning" && !provisioning_shot {
            b.screenshot("create-provisioning").await;
            provisioning_shot = true;
        }
        if badge == "Ready" {
            assert_eq!(
                steps,
                json!([
                    ["Creating", "done"],
                    ["Deploying", "done"],
                    ["Booting", "done"],
                    ["Ready", "done"]
                ]),
                "the stepper at Ready"
            );
            break;
        }
        assert_ne!(
            badge,
            "Error",
            "provisioning failed: {:?}",
            b.text("main").await
        );
        assert!(
            Instant::now() < deadline,
            "not Ready within 240 s: the badge shows {badge:?}, the stepper {steps}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("Ready in the browser after {:?}", started.elapsed());
    assert!(
        !seen_current.is_empty(),
        "the stepper showed a current step while provisioning"
    );
    b.screenshot("create-ready").await;
    if !live_on_create {
        live_problems.push("console.js did not run on the Create page".to_owned());
    }
    if !b.still_marked().await {
        live_problems.push(
            "the Create page was reloaded between Create and Ready \
             (window.__sameDocument was lost): the form was not sent with fetch \
             or the page did not poll by swapping <main>"
                .to_owned(),
        );
    }
    let instance = api
        .control(&format!("/control/openclaw/instance?user_id={user}"))
        .await;
    assert_eq!(instance["status"], "ready", "{instance}");
    instance
}

/// The overview offers the gateway through the ingress; the server's port
/// and the gateway's address.
async fn overview_ready(b: &Browser, ctx: &Context, instance: &Value) -> (String, String) {
    let minute = Duration::from_secs(60);

    // The overview offers the gateway through the ingress, on this port.
    b.click(r#"nav a[href="/console"]"#).await;
    b.wait_for_text("#instance-status", "Ready", minute).await;
    let open = b
        .eval(
            "return document.querySelector('#open-openclaw').getAttribute('href');",
            vec![],
        )
        .await;
    let port = ctx.base.rsplit(':').next().unwrap().to_owned();
    let gateway_url = format!(
        "http://{}.localhost:{port}/",
        instance["runtime_name"].as_str().unwrap()
    );
    assert_eq!(open, json!("/console/open"), "Open OpenClaw");
    let shown = b.text("#gateway-address").await.unwrap_or_default();
    assert_eq!(shown, gateway_url, "the address devices connect to");
    b.screenshot("overview-ready").await;
    (port, gateway_url)
}
