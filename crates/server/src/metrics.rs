//! Prometheus metrics, one registry per server (no process-wide globals, so
//! several servers in one test process do not mix their numbers).
//!
//! - `clawplane_http_requests_total{method,route,status}` and
//!   `clawplane_http_request_duration_seconds{method,route}`: the route is the
//!   matched template (`/api/openclaw/runtime/devices/{requestId}/approve`),
//!   never the raw path, so label values stay few and carry no input;
//! - `clawplane_instances{status}`: read from the store at each scrape;
//! - `clawplane_provisioning_duration_seconds{outcome}`: create to ready or error;
//! - `clawplane_ledger_operations_total{operation,outcome}`;
//! - `clawplane_runtime_restarts_total{outcome}` (`restored`, `failed`,
//!   `given_up`) and `clawplane_instances_interrupted` (instances whose
//!   runtime died and is being restored now), from the supervisor;
//! - `clawplane_task_restarts_total{task}`: background tasks that ended
//!   unexpectedly and were started again;
//! - the model proxy's tokens, cost, holds and upstream errors by model
//!   (`crate::models::metrics`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use clawplane_domain::InstanceStatus;
use clawplane_store::Store;

use crate::instances::cells::CellReading;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LedgerLabels {
    operation: &'static str,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
}

type CellGauge = Family<InstanceLabels, Gauge>;
type CellGaugeF = Family<InstanceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;

/// The cells' readings and limits, set anew at every scrape.
#[derive(Default)]
struct CellGauges {
    count: Gauge,
    memory: CellGauge,
    memory_limit: CellGauge,
    cpu_seconds: CellGaugeF,
    cpu_limit: CellGaugeF,
    processes: CellGauge,
    pids_limit: CellGauge,
    disk: CellGauge,
    disk_quota: CellGauge,
}

impl CellGauges {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "clawplane_cells",
            "Running instances in a cell",
            self.count.clone(),
        );
        let families: [(&str, &str, &CellGauge); 6] = [
            (
                "clawplane_cell_memory_bytes",
                "Memory a cell uses",
                &self.memory,
            ),
            (
                "clawplane_cell_memory_limit_bytes",
                "A cell's memory limit",
                &self.memory_limit,
            ),
            (
                "clawplane_cell_processes",
                "Processes in a cell",
                &self.processes,
            ),
            (
                "clawplane_cell_pids_limit",
                "A cell's process limit",
                &self.pids_limit,
            ),
            (
                "clawplane_cell_disk_bytes",
                "Disk a cell's state and home use",
                &self.disk,
            ),
            (
                "clawplane_cell_disk_quota_bytes",
                "A cell's disk quota",
                &self.disk_quota,
            ),
        ];
        for (name, help, family) in families {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "clawplane_cell_cpu_seconds",
            "CPU time a cell's processes used",
            self.cpu_seconds.clone(),
        );
        registry.register(
            "clawplane_cell_cpu_limit",
            "A cell's CPU limit, in CPUs",
            self.cpu_limit.clone(),
        );
    }

    fn set(&self, readings: &[CellReading]) {
        for family in [
            &self.memory,
            &self.memory_limit,
            &self.processes,
            &self.pids_limit,
            &self.disk,
            &self.disk_quota,
        ] {
            family.clear();
        }
        self.cpu_seconds.clear();
        self.cpu_limit.clear();
        let mut cells = 0;
        for r in readings {
            if r.cell["isolation"] != "cell" {
                continue;
            }
            cells += 1;
            let labels = InstanceLabels {
                instance: r.instance.clone(),
            };
            let limits = &r.cell["limits"];
            let pairs: [(&CellGauge, &serde_json::Value); 6] = [
                (&self.memory, &r.cell["memoryBytes"]),
                (&self.memory_limit, &limits["memoryBytes"]),
                (&self.processes, &r.cell["processes"]),
                (&self.pids_limit, &limits["pids"]),
                (&self.disk, &r.cell["diskBytes"]),
                (&self.disk_quota, &limits["diskQuotaBytes"]),
            ];
            for (family, value) in pairs {
                if let Some(v) = value.as_u64() {
                    family
                        .get_or_create(&labels)
                        .set(i64::try_from(v).unwrap_or(i64::MAX));
                }
            }
            if let Some(usec) = r.cell["cpuUsec"].as_u64() {
                self.cpu_seconds
                    .get_or_create(&labels)
                    .set(usec as f64 / 1e6);
            }
            if let Some(cpus) = limits["cpus"].as_f64() {
                self.cpu_limit.get_or_create(&labels).set(cpus);
            }
        }
        self.count.set(cells);
    }
}

/// The server's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    cells: CellGauges,
    models: crate::models::metrics::ModelMetrics,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    instances: Family<StatusLabels, Gauge>,
    provisioning: HistogramFamily<OutcomeLabels>,
    ledger: Family<LedgerLabels, Counter>,
    ingress: Family<OutcomeLabels, Counter>,
    restarts: Family<OutcomeLabels, Counter>,
    interrupted: Gauge,
    tasks: Family<TaskLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn provisioning_histogram() -> Histogram {
    // 0.25 s .. ~8.5 min
    Histogram::new(exponential_buckets(0.25, 2.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        let instances = Family::<StatusLabels, Gauge>::default();
        let provisioning: HistogramFamily<OutcomeLabels> =
            Family::new_with_constructor(provisioning_histogram);
        let ledger = Family::<LedgerLabels, Counter>::default();
        let ingress = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "clawplane_http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "clawplane_http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "clawplane_instances",
            "Instances by status",
            instances.clone(),
        );
        registry.register(
            "clawplane_provisioning_duration_seconds",
            "Time from the start of provisioning to ready or error",
            provisioning.clone(),
        );
        registry.register(
            "clawplane_ledger_operations",
            "Credit ledger operations by kind and outcome",
            ledger.clone(),
        );
        registry.register(
            "clawplane_ingress_requests",
            "Requests at the front door to the gateways, by outcome",
            ingress.clone(),
        );
        let restarts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "clawplane_runtime_restarts",
            "Runtimes found dead and started again, by outcome",
            restarts.clone(),
        );
        let interrupted = Gauge::default();
        registry.register(
            "clawplane_instances_interrupted",
            "Instances whose runtime died and is being restored",
            interrupted.clone(),
        );
        let tasks = Family::<TaskLabels, Counter>::default();
        registry.register(
            "clawplane_task_restarts",
            "Background tasks that ended unexpectedly and were started again",
            tasks.clone(),
        );
        let cells = CellGauges::default();
        cells.register(&mut registry);
        let models = crate::models::metrics::ModelMetrics::default();
        models.register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                cells,
                models,
                registry,
                requests,
                latency,
                instances,
                provisioning,
                ledger,
                ingress,
                restarts,
                interrupted,
                tasks,
            }),
        }
    }

    /// Records the end of one attempt to restore a dead runtime:
    /// `restored`, `failed` (tried again later) or `given_up`.
    pub fn runtime_restart(&self, outcome: &'static str) {
        self.inner
            .restarts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// One more (or, with `false`, one fewer) instance being restored.
    pub fn interrupted(&self, more: bool) {
        if more {
            self.inner.interrupted.inc();
        } else {
            self.inner.interrupted.dec();
        }
    }

    /// The model proxy's counters.
    pub fn models(&self) -> &crate::models::metrics::ModelMetrics {
        &self.inner.models
    }

    /// Records a background task started again after ending unexpectedly.
    pub fn task_restarted(&self, task: &'static str) {
        self.inner.tasks.get_or_create(&TaskLabels { task }).inc();
    }

    /// Records one provisioning run.
    pub fn provisioned(&self, outcome: &'static str, seconds: f64) {
        self.inner
            .provisioning
            .get_or_create(&OutcomeLabels { outcome })
            .observe(seconds);
    }

    /// Records one ledger operation (`grant`, `burn`, `reverse`) and whether it succeeded.
    pub fn ledger<T, E>(&self, operation: &'static str, result: &Result<T, E>) {
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        self.inner
            .ledger
            .get_or_create(&LedgerLabels { operation, outcome })
            .inc();
    }

    /// Records one request at the ingress: `forwarded`, `websocket`,
    /// `not_found`, `refused` (a browser without the owner's pass),
    /// `unavailable` or `unreachable`.
    pub fn ingress(&self, outcome: &'static str) {
        self.inner
            .ingress
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The text exposition, with instance counts read from the store now
    /// and the cells' readings given.
    pub async fn render(
        &self,
        store: &Store,
        cells: &[CellReading],
    ) -> Result<String, std::fmt::Error> {
        self.inner.cells.set(cells);
        if let Ok(counts) = store.count_instances_by_status().await {
            for status in InstanceStatus::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                self.inner
                    .instances
                    .get_or_create(&StatusLabels {
                        status: status.as_str(),
                    })
                    .set(n);
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        Ok(out)
    }
}

/// Middleware recording every request by its matched route.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics
        .inner
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .inner
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status,
        })
        .inc();
    response
}
