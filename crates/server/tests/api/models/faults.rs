//! Bad input and upstream faults through `serve`, with the real ledger:
//! each gets its status and OpenAI's error shape and bills nothing; a
//! stream that breaks after part of the answer went out, and an answer
//! without usage, bill the whole hold (the proxy's documented rule); a
//! client that goes away mid-stream is billed what the upstream reported.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use clawplane_secrets::ExposeSecret;
use clawplane_store::Backend;
use clawplane_testkit::fake_upstream::{cue, COMPLETION, PIECES, PROMPT, UPSTREAM_KEY};
use serde_json::{json, Value};

use super::cues::{self, body, error_code};
use super::ModelsApp;

const GRANT: i64 = 1_000_000;

/// Who sends a case: the tenant's token, none, or nobody's.
#[derive(Clone, Copy)]
enum Sender {
    Tenant,
    Anonymous,
    Stranger,
}

/// One request and the error it must get. A code `upstream_*` is the
/// upstream's fault, so the request reached it; the others never do.
struct Case {
    what: &'static str,
    sender: Sender,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn case(
    what: &'static str,
    sender: Sender,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
) -> Case {
    let status = StatusCode::from_u16(status).unwrap();
    Case {
        what,
        sender,
        body,
        status,
        code,
    }
}

#[tokio::test]
async fn bad_input_and_upstream_faults_get_their_error_and_bill_nothing() {
    let app = ModelsApp::spawn_with(Backend::Sqlite, cues::settings()).await;
    let (user, token) = app.tenant("faults", Some("1")).await;
    let oversize = serde_json::to_vec(&json!({"model": "cued", "messages": [
        {"role": "user", "content": "x".repeat(70 * 1024)}]}))
    .unwrap();
    use Sender::{Anonymous, Stranger, Tenant};
    let cases = [
        case(
            "no token",
            Anonymous,
            body("hi", false),
            401,
            "invalid_api_key",
        ),
        case(
            "nobody's token",
            Stranger,
            body("hi", true),
            401,
            "invalid_api_key",
        ),
        case(
            "malformed JSON",
            Tenant,
            b"{not json".to_vec(),
            400,
            "invalid_request",
        ),
        case("oversize body", Tenant, oversize, 413, "request_too_large"),
        case(
            "upstream 429",
            Tenant,
            body(cue::TOO_MANY, true),
            429,
            "upstream_rate_limited",
        ),
        case(
            "upstream 500",
            Tenant,
            body(cue::SERVER_ERROR, true),
            502,
            "upstream_error",
        ),
        case(
            "upstream 400",
            Tenant,
            body(cue::BAD_REQUEST, false),
            400,
            "upstream_refused",
        ),
        case(
            "upstream stall",
            Tenant,
            body(cue::STALL, false),
            504,
            "upstream_timeout",
        ),
        case(
            "upstream stall, streamed",
            Tenant,
            body(cue::STALL, true),
            504,
            "upstream_timeout",
        ),
    ];
    for Case {
        what,
        sender,
        body: request,
        status,
        code,
    } in cases
    {
        let reaches = code.starts_with("upstream_");
        let seen = app.upstream.seen().len();
        let started = Instant::now();
        let token = match sender {
            Sender::Tenant => Some(token.expose_secret()),
            Sender::Anonymous => None,
            Sender::Stranger => Some("nobodys-model-token"),
        };
        let response = app.post(token, request).await;
        assert_eq!(response.status(), status, "{what}");
        assert!(response.headers().contains_key("x-request-id"), "{what}");
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "7", "{what}");
        }
        let text = response.text().await.unwrap();
        assert!(
            !text.contains(UPSTREAM_KEY),
            "{what}: the key leaked: {text}"
        );
        let answer: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
        assert_eq!(error_code(&answer), code, "{what}: {answer}");
        if reaches {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("Nothing was billed"), "{what}: {message}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert_eq!(
            app.upstream.seen().len(),
            seen + usize::from(reaches),
            "{what}"
        );
        assert!(app.model_entries(&user).await.is_empty(), "{what}: billed");
        let balance = app.ledger.balance(&user).await.unwrap().balance_micro_usd;
        assert_eq!(balance, GRANT, "{what}");
        app.assert_nothing_held(&user).await;
    }
    app.assert_verify_clean().await;
    app.stop().await;
}

#[tokio::test]
async fn a_broken_stream_or_an_answer_without_usage_bills_the_whole_hold() {
    let app = ModelsApp::spawn_with(Backend::Sqlite, cues::settings()).await;
    let (user, token) = app.tenant("broken", Some("1")).await;
    let mut billed = 0;
    for (n, (cue, stream)) in [
        (cue::CUT, true),
        (cue::STALL_MID, true),
        (cue::NO_USAGE, false),
    ]
    .into_iter()
    .enumerate()
    {
        let request = body(cue, stream);
        let hold = app.hold_of(&request);
        let response = app.post(Some(token.expose_secret()), request).await;
        assert_eq!(response.status(), StatusCode::OK, "{cue}");
        let text = response.text().await.unwrap();
        if stream {
            // Two pieces went out, then the stream says why it ended.
            assert!(
                text.contains("piece-1") && !text.contains("piece-2"),
                "{cue}: {text}"
            );
            assert!(text.contains("\"error\""), "{cue}: {text}");
        }
        // Part of the answer went out and no usage came: the whole hold.
        let entries = app.model_entries(&user).await;
        assert_eq!(entries.len(), n + 1, "{cue}: {entries:?}");
        assert_eq!(entries[0].amount.micros(), -hold, "{cue}: {:?}", entries[0]);
        billed += hold;
        app.assert_nothing_held(&user).await;
    }
    let balance = app.ledger.balance(&user).await.unwrap().balance_micro_usd;
    assert_eq!(balance, GRANT - billed);
    app.assert_verify_clean().await;
    app.stop().await;
}

async fn a_client_gone_mid_stream_pays_the_upstreams_usage(backend: Backend) {
    let app = ModelsApp::spawn_with(backend, cues::settings()).await;
    let (user, token) = app.tenant("leaver", Some("1")).await;
    let request = body(cue::GATED, true);
    let hold = app.hold_of(&request);
    let mut response = app.post(Some(token.expose_secret()), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the first piece within 5 s")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("piece-0"));
    drop(response);
    // The rest of the stream, and its usage, come only after the client left.
    app.upstream.gate.add_permits(PIECES);

    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let entries = app.model_entries(&user).await;
        let open = app.db.store.open_holds(None, 10).await.unwrap();
        if !entries.is_empty() && open.is_empty() {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "not settled in 10 s: {entries:?} {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entries.len(), 1, "{entries:?}");
    let cost = app.usage_cost();
    assert!(cost < hold);
    assert_eq!(entries[0].amount.micros(), -cost, "{:?}", entries[0]);
    assert_eq!(entries[0].meta["input_tokens"], PROMPT);
    assert_eq!(entries[0].meta["output_tokens"], COMPLETION);
    let balance = app.ledger.balance(&user).await.unwrap().balance_micro_usd;
    assert_eq!(balance, GRANT - cost);
    app.assert_nothing_held(&user).await;
    app.assert_verify_clean().await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_gone_mid_stream_pays_the_upstreams_usage_on_sqlite() {
    a_client_gone_mid_stream_pays_the_upstreams_usage(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_client_gone_mid_stream_pays_the_upstreams_usage_on_postgres() {
    a_client_gone_mid_stream_pays_the_upstreams_usage(Backend::Postgres).await;
}
