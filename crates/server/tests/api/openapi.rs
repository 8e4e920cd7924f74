//! The OpenAPI document at `GET /api/openapi.json` is stable (it equals a
//! committed snapshot) and describes what every operation answers (a 2xx
//! response with an `application/json` schema).
//!
//! A change to a route's description changes the snapshot: review the
//! difference, then write the new one with
//! `UPDATE_SNAPSHOTS=1 cargo nextest run -p clawplane-server openapi`.

use std::path::PathBuf;

use clawplane_store::Backend;
use serde_json::Value;

use crate::helpers::spawn_app;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/snapshots/openapi.json")
}

async fn served_document() -> Value {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/api/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    app.stop().await;
    doc
}

#[tokio::test]
async fn the_openapi_document_equals_its_snapshot() {
    let doc = served_document().await;
    let path = snapshot_path();
    // `UPDATE_SNAPSHOTS=1` writes the served document as the new snapshot
    // (and the test passes): for an intended change, reviewed in the diff.
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = serde_json::to_string_pretty(&doc).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        eprintln!("UPDATE_SNAPSHOTS=1: wrote {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no snapshot at {} ({e}): run with UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    let snapshot: Value = serde_json::from_str(&text).unwrap();
    // Compared as parsed JSON, so key order and whitespace do not matter.
    let mut differences = Vec::new();
    differ("", &doc, &snapshot, &mut differences);
    assert!(
        differences.is_empty(),
        "the OpenAPI document differs from {} at {differences:?}: if the change is \
         intended, review it and run with UPDATE_SNAPSHOTS=1 to update the snapshot",
        path.display(),
    );
}

/// The JSON pointers (at most 20) where `served` and `snapshot` differ.
fn differ(at: &str, served: &Value, snapshot: &Value, out: &mut Vec<String>) {
    if out.len() >= 20 || served == snapshot {
        return;
    }
    match (served, snapshot) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<_> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differ(&here, x, y, out),
                    (Some(_), None) => out.push(format!("{here} (new)")),
                    (None, _) => out.push(format!("{here} (gone)")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differ(&format!("{at}/{i}"), x, y, out);
            }
        }
        _ => out.push(format!("{at}: {served} (was {snapshot})")),
    }
}

/// `response` itself, or the response its `$ref` names in `components`.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(name) => {
            let name = name.trim_start_matches("#/components/responses/");
            &doc["components"]["responses"][name]
        }
        None => response,
    }
}

/// Whether `operation` has a 2xx response with a JSON schema, and a
/// schema named by `$ref` is one the document defines.
fn describes_its_body(doc: &Value, operation: &Value) -> bool {
    let Some(responses) = operation["responses"].as_object() else {
        return false;
    };
    responses.iter().any(|(status, response)| {
        let Some(schema) = resolve(doc, response)["content"]["application/json"].get("schema")
        else {
            return false;
        };
        let defined = match schema["$ref"].as_str() {
            Some(name) => {
                let name = name.trim_start_matches("#/components/schemas/");
                doc["components"]["schemas"].get(name).is_some()
            }
            None => true,
        };
        status.starts_with('2') && defined
    })
}

#[tokio::test]
async fn every_operation_describes_its_response_body() {
    let doc = served_document().await;
    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut undescribed = Vec::new();
    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                operations += 1;
                if !describes_its_body(&doc, operation) {
                    undescribed.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(
        operations >= 31,
        "the document lists {operations} operations"
    );
    assert!(
        undescribed.is_empty(),
        "these operations have no 2xx response with an application/json schema \
         (add `body = ...` from routes/schemas.rs to their #[utoipa::path]): {undescribed:?}"
    );
}
