//! Part 2 of `clawplane bench healing`: the supervision loop's cost with N
//! `ready` instances whose runtimes are stand-ins ([`super::standins`]),
//! over the real instance service, store and local provisioner. The
//! process's CPU (and the stand-ins' thread's, apart) is read from
//! `/proc/self/stat` over an idle period and an equal supervised one.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawplane_billing::{BillingConfig, Ledger};
use clawplane_domain::{InstanceFields, InstanceStatus, UserId};
use clawplane_secrets::{EncryptionKey, KeyRing};
use clawplane_server::instances::supervision::SupervisionSettings;
use clawplane_server::instances::{InstanceSettings, Instances};
use clawplane_server::metrics::Metrics;
use clawplane_server::provision::local::{LocalProvisioner, LocalSettings};
use clawplane_store::{NewInstance, Store, StoreOptions, Vault};

use super::standins::{Listeners, StandIns};
use super::HealingBenchArgs;

pub(super) struct Cost {
    idle: Period,
    supervised: Period,
    found_dead: usize,
}

#[derive(Default, Clone, Copy)]
struct Period {
    wall: f64,
    /// CPU seconds of the whole process.
    cpu: f64,
    /// CPU seconds of the stand-ins' listener thread.
    listeners: f64,
    hits: u64,
    connections: u64,
}

/// Measures the idle and the supervised periods.
pub(super) async fn measure(args: &HealingBenchArgs) -> anyhow::Result<Cost> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let store = Store::open_sqlite_dir(&data, &StoreOptions::default()).await?;
    let local = Arc::new(LocalProvisioner::new(LocalSettings {
        data_dir: data.clone(),
        // A stand-in found dead is never replaced by a real runtime: its
        // restart fails, and the instance shows it (counted below).
        binary: dir.path().join("no-runtime-here"),
        cache_dir: dir.path().join("cache"),
        start_timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(5),
        cell_uid_base: None,
        runtime_args: Vec::new(),
    }));
    let settings = InstanceSettings {
        supervision: SupervisionSettings {
            interval: Duration::from_secs(args.interval_secs.max(1)),
            ..Default::default()
        },
        ..Default::default()
    };
    let instances = Instances::new(
        store.clone(),
        Vault::new(store.clone(), KeyRing::new(EncryptionKey::generate())),
        Ledger::new(store.clone(), BillingConfig::default()),
        local.clone(),
        settings,
        Metrics::new(),
    );
    let listeners = Listeners::start(args.instances).await?;
    let mut standins = StandIns::default();
    let lifetime = 2 * args.seconds + 4 * args.interval_secs + 120;
    for (i, port) in listeners.ports.iter().enumerate() {
        let instance = store
            .create_instance(NewInstance {
                user_id: UserId::parse(&format!("bench-standin-{i:04}"))?,
                fields: InstanceFields {
                    provisioner: Some("local".into()),
                    runtime_url: Some(format!("http://127.0.0.1:{port}")),
                    instance_type: Some("local".into()),
                    ..Default::default()
                },
            })
            .await?;
        store
            .set_instance_status(instance.id, InstanceStatus::Ready, None)
            .await?;
        let pid = standins.spawn(&instance.id.to_string(), lifetime)?;
        let dir = local.instance_dir(instance.id);
        std::fs::create_dir_all(&dir)?;
        let record = serde_json::json!({
            "pid": pid, "listen_port": port, "gateway_port": 0, "cell_uid": null,
        });
        std::fs::write(dir.join("runtime.json"), record.to_string())?;
    }

    let period = Duration::from_secs(args.seconds.max(1));
    let before = snapshot(&listeners);
    tokio::time::sleep(period).await;
    let idle = snapshot(&listeners).since(&before);

    let supervisor = tokio::spawn(instances.clone().supervise());
    // One interval to warm up (the first round opens every connection).
    tokio::time::sleep(Duration::from_secs(args.interval_secs.max(1))).await;
    let before = snapshot(&listeners);
    tokio::time::sleep(period).await;
    let supervised = snapshot(&listeners).since(&before);
    supervisor.abort();
    let _ = supervisor.await;
    instances
        .shutdown_until(tokio::time::Instant::now() + Duration::from_secs(10))
        .await;

    let mut found_dead = 0;
    for status in [InstanceStatus::Ready, InstanceStatus::Error] {
        for i in store.instances_in_status(status, None, 100_000).await? {
            if i.status != InstanceStatus::Ready || i.status_reason.is_some() {
                found_dead += 1;
            }
        }
    }
    drop(standins);
    drop(listeners);
    store.close().await;
    Ok(Cost {
        idle,
        supervised,
        found_dead,
    })
}

/// Prints the table.
pub(super) fn print(args: &HealingBenchArgs, c: &Cost) {
    println!(
        "## The supervision loop's cost ({} `ready` instances, interval {} s, {} s per period; the agents are stand-ins, the probe path is the real one)\n",
        args.instances, args.interval_secs, args.seconds
    );
    println!("| period | CPU s per minute | % of one core | of it the stand-ins' `/healthz` thread, CPU s per minute | `/healthz` requests/s | new connections/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, cpu: f64, listeners: f64, hits: f64, conns: f64, wall: f64| {
        let wall = wall.max(0.001);
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
            cpu * 60.0 / wall,
            100.0 * cpu / wall,
            listeners * 60.0 / wall,
            hits / wall,
            conns / wall
        );
    };
    let (i, s) = (&c.idle, &c.supervised);
    row(
        "idle: stand-ins up, no supervisor",
        i.cpu,
        i.listeners,
        i.hits as f64,
        i.connections as f64,
        i.wall,
    );
    row(
        "supervisor running",
        s.cpu,
        s.listeners,
        s.hits as f64,
        s.connections as f64,
        s.wall,
    );
    // Rates, so the two periods need not be exactly as long.
    let per = |p: &Period, v: f64| v / p.wall.max(0.001);
    let wall = 1.0;
    row(
        "added by the supervisor",
        per(s, s.cpu) - per(i, i.cpu),
        per(s, s.listeners) - per(i, i.listeners),
        per(s, s.hits as f64) - per(i, i.hits as f64),
        per(s, s.connections as f64) - per(i, i.connections as f64),
        wall,
    );
    let checks = per(s, s.hits as f64);
    println!(
        "\nNominal rate: {} checks/s ({} instances every {} s); each check also reads the instance from the store, and each round lists the instances twice.",
        args.instances as f64 / args.interval_secs.max(1) as f64,
        args.instances,
        args.interval_secs.max(1)
    );
    let own = (per(s, s.cpu) - per(s, s.listeners)) - (per(i, i.cpu) - per(i, i.listeners));
    println!(
        "CPU per check, the supervisor's side (the process less the stand-ins' thread, less idle): {:.2} ms. Instances found dead or not `ready`: {}.\n",
        1000.0 * own / checks.max(0.001),
        c.found_dead
    );
}

/// The process's and the stand-ins' thread's CPU, and the hits, now.
fn snapshot(listeners: &Listeners) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        cpu: cpu_seconds("/proc/self/stat"),
        listeners: cpu_seconds(&format!("/proc/self/task/{}/stat", listeners.tid)),
        hits: listeners.counters.hits.load(Ordering::Relaxed),
        connections: listeners.counters.connections.load(Ordering::Relaxed),
    }
}

struct Snapshot {
    at: Instant,
    cpu: f64,
    listeners: f64,
    hits: u64,
    connections: u64,
}

impl Snapshot {
    fn since(&self, before: &Snapshot) -> Period {
        Period {
            wall: self.at.duration_since(before.at).as_secs_f64(),
            cpu: self.cpu - before.cpu,
            listeners: self.listeners - before.listeners,
            hits: self.hits - before.hits,
            connections: self.connections - before.connections,
        }
    }
}

/// User plus system CPU of a process or thread from its `stat`, seconds:
/// fields 14 and 15, in clock ticks of `USER_HZ`, 100 on Linux (a process's
/// include its threads that have ended). 0 when unreadable.
fn cpu_seconds(stat: &str) -> f64 {
    const USER_HZ: f64 = 100.0;
    let Ok(text) = std::fs::read_to_string(stat) else {
        return 0.0;
    };
    // The command name is in parentheses and may hold spaces; the state
    // (field 3) follows it.
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / USER_HZ
}
