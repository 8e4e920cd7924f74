//! Every body of the contract reads the wire's JSON and writes it back with
//! the same keys and values (the runtime writes what `serve` reads, and
//! `serve` passes some of it through unchanged).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

/// One case: its name, a body as the wire has it, and [`again`] at a type.
type Case = (&'static str, Value, fn(Value) -> Value);

/// Reads `wire` as `T` and writes it back.
fn again<T: Serialize + DeserializeOwned>(wire: Value) -> Value {
    let typed: T = serde_json::from_value(wire).expect("the wire's body reads");
    serde_json::to_value(typed).expect("and writes")
}

fn backup() -> Value {
    json!({"id": "20261124T061500.123Z-1a2b3c4d", "created_at": "2026-11-24T06:15:00.123Z",
        "trigger": "manual", "files": 12, "bytes": 3456})
}

/// Times as chrono writes them (the runtime's side): 0, 3, 6 or 9 digits.
fn gateway(uptime: Option<Value>) -> Value {
    let mut g = json!({"state": "running", "pid": 4242, "startedAt": "2026-11-24T06:00:00.500Z",
        "readyAt": "2026-11-24T06:00:01.123456789Z", "restarts": 1, "crashes": 0,
        "lastExit": {"code": null, "signal": 15, "at": "2026-11-24T05:59:59Z"}, "lastError": null});
    if let Some(u) = uptime {
        g["uptimeMs"] = u;
    }
    g
}

fn stopped_gateway() -> Value {
    json!({"state": "stopped", "pid": null, "startedAt": null, "readyAt": null, "restarts": 0,
        "crashes": 0, "lastExit": null, "lastError": null})
}

#[test]
fn every_body_reads_and_writes_the_wires_names() {
    let cell = json!({"isolation": "cell", "uid": 60001,
        "limits": {"memoryBytes": 2147483648u64, "cpus": 1.5, "pids": 512, "openFiles": 4096, "diskQuotaBytes": 10737418240u64},
        "egress": "public", "memoryBytes": 123456, "cpuUsec": 789, "processes": 7, "diskBytes": 1024,
        "stoppedReason": null});
    let no_cell = json!({"isolation": "none", "uid": null, "limits": null, "egress": null,
        "memoryBytes": null, "cpuUsec": null, "processes": null, "diskBytes": null, "stoppedReason": null});
    let status = |gateway: Value, last: Value, cell: &Value| {
        json!({"gateway": gateway, "lastBackup": last, "cell": cell, "instanceId": "i-1",
            "instanceType": "local", "version": "2026.9.6",
            "versions": {"openclaw": "2026.9.6", "clawplane": "0.1.0"}})
    };
    let device = json!({"requestId": "0b7f9c1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e", "displayName": "phone",
        "platform": "ios", "remoteIp": "203.0.113.9", "ts": 1764000000000i64, "extra": {"any": [1, 2.5]}});
    let mut stopped_gateway_in_status = stopped_gateway();
    stopped_gateway_in_status["uptimeMs"] = Value::Null;
    let cases: Vec<Case> = vec![
        (
            "status",
            status(gateway(Some(json!(1234))), backup(), &cell),
            again::<Status>,
        ),
        (
            "status, nothing yet",
            status(stopped_gateway_in_status, Value::Null, &no_cell),
            again::<Status>,
        ),
        ("logs", json!({"lines": ["one", "two"]}), again::<Logs>),
        (
            "usage",
            json!({"usage": {"cacheStatus": {"status": "fresh"}, "daily": [{"date": "2026-11-24", "totalCost": 0.000054}]}}),
            again::<Usage>,
        ),
        ("healthz", json!({"status": "live"}), again::<Health>),
        (
            "devices",
            json!({"pending": [device.clone()], "paired": [{"deviceId": "d", "approvedAtMs": 1}]}),
            again::<DeviceList>,
        ),
        (
            "approve",
            json!({"requestId": "r", "deviceId": "d", "device": {"deviceId": "d", "x": true}}),
            again::<DeviceDecision>,
        ),
        (
            "reject",
            json!({"requestId": "r", "deviceId": null, "device": null}),
            again::<DeviceDecision>,
        ),
        (
            "backup",
            json!({"backup": backup(), "bytesUploaded": 100, "blobsUploaded": 2, "blobsReused": 3, "lastBackup": backup()}),
            again::<BackupTaken>,
        ),
        (
            "backups",
            json!({"backups": [backup(), backup()]}),
            again::<BackupList>,
        ),
        (
            "restore request",
            json!({"backupId": "20261124T061500.123Z-1a2b3c4d"}),
            again::<RestoreRequest>,
        ),
        (
            "restore request, the latest",
            json!({"backupId": null}),
            again::<RestoreRequest>,
        ),
        (
            "restore",
            json!({"restored": {"backupId": "b", "files": 3, "bytes": 9}, "gateway": gateway(None)}),
            again::<RestoreReply>,
        ),
        (
            "start",
            json!({"gateway": gateway(None)}),
            again::<GatewayReply>,
        ),
        (
            "stop",
            json!({"gateway": stopped_gateway(), "backup": backup()}),
            again::<GatewayReply>,
        ),
        (
            "stop, nothing ran",
            json!({"gateway": stopped_gateway(), "backup": null}),
            again::<GatewayReply>,
        ),
    ];
    for (name, wire, read_and_write) in cases {
        assert_eq!(read_and_write(wire.clone()), wire, "{name}");
    }
}

#[test]
fn the_fields_serve_reads_are_typed() {
    let status: Status = serde_json::from_value(json!({"gateway": gateway(Some(json!(5))),
        "lastBackup": backup(), "cell": {"isolation": "cell", "uid": 1, "limits": null, "egress": "public",
        "memoryBytes": null, "cpuUsec": null, "processes": null, "diskBytes": null, "stoppedReason": "full"},
        "instanceId": "i", "instanceType": "t", "version": "v", "versions": {"openclaw": "v", "clawplane": "c"}}))
    .unwrap();
    assert_eq!(status.gateway.state, GatewayState::Running);
    assert_eq!(status.gateway.uptime_ms, Some(Some(5)));
    assert_eq!(status.last_backup.unwrap().trigger, "manual");
    assert!(status.cell.is_isolated() && status.cell.has_public_egress());
    assert_eq!(GatewayState::Crashed.to_string(), "crashed");
    let start: GatewayReply =
        serde_json::from_value(json!({"gateway": stopped_gateway()})).unwrap();
    assert_eq!(start.backup, None);
    assert_eq!(
        RestoreRequest::default(),
        serde_json::from_value(json!({})).unwrap()
    );
}

#[test]
fn paths_and_headers() {
    assert_eq!(GatewayAction::Restart.path(), "/v1/gateway/restart");
    assert_eq!(
        GatewayAction::Stop.path(),
        format!("/v1/gateway/{}", GatewayAction::Stop.as_str())
    );
    assert_eq!(paths::device_approve("x"), "/v1/devices/x/approve");
    assert_eq!(paths::device_reject("x"), "/v1/devices/x/reject");
    assert_eq!(paths::logs(0), "/v1/logs?lines=1");
    assert_eq!(paths::logs(5000), "/v1/logs?lines=2000");
    assert_eq!(
        paths::through_gateway("/v1/responses"),
        "/gateway/v1/responses"
    );
    assert_eq!(
        headers::SERVICE_TOKEN.as_str(),
        "x-openagents-service-token"
    );
    assert_eq!(
        headers::GATEWAY_OWNER.as_str(),
        "x-openagents-gateway-owner"
    );
}
