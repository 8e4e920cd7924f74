//! FakeMeter: an in-memory, recording stand-in for the ledger behind the
//! proxy (a fake, not the real accounts): one token, one balance, every
//! reserve, settle and release kept in order.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use clawplane_domain::MicroUsd;
use clawplane_models::{Caller, HoldId, Meter, Refusal, Unavailable, UpstreamFailure, Usage};
use tokio::sync::Notify;

/// The model token the fake knows.
pub const TOKEN: &str = "model-token-of-instance-1";

/// What the proxy did to the accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Reserved {
        hold: String,
        model: String,
        amount: i64,
        request_id: String,
    },
    Settled {
        hold: String,
        usage: Option<Usage>,
        cost: i64,
    },
    Released {
        hold: String,
    },
}

/// The fake (in memory; says so in its name).
pub struct FakeMeter {
    balance: Mutex<i64>,
    events: Mutex<Vec<Event>>,
    failures: Mutex<Vec<UpstreamFailure>>,
    changed: Notify,
}

impl FakeMeter {
    pub fn with_balance(micros: i64) -> FakeMeter {
        FakeMeter {
            balance: Mutex::new(micros),
            events: Mutex::default(),
            failures: Mutex::default(),
            changed: Notify::new(),
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn failures(&self) -> Vec<UpstreamFailure> {
        self.failures.lock().unwrap().clone()
    }

    pub fn balance(&self) -> i64 {
        *self.balance.lock().unwrap()
    }

    /// Waits (at most 10 s) until `n` holds have been settled or released.
    pub async fn finished(&self, n: usize) -> Vec<Event> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                let done = self
                    .events()
                    .iter()
                    .filter(|e| !matches!(e, Event::Reserved { .. }))
                    .count();
                if done >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the holds are finished within 10 s");
        self.events()
    }

    fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
        self.changed.notify_waiters();
    }

    fn amount_of(&self, hold: &str) -> i64 {
        self.events()
            .iter()
            .find_map(|e| match e {
                Event::Reserved {
                    hold: h, amount, ..
                } if h == hold => Some(*amount),
                _ => None,
            })
            .expect("a hold that was reserved")
    }
}

#[async_trait]
impl Meter for FakeMeter {
    async fn caller(&self, token: &str) -> Result<Option<Caller>, Unavailable> {
        Ok((token == TOKEN).then(|| Caller {
            user_id: "user-1".into(),
            instance_id: "instance-1".into(),
        }))
    }

    async fn reserve(
        &self,
        _caller: &Caller,
        model: &str,
        amount: MicroUsd,
        request_id: &str,
    ) -> Result<HoldId, Refusal> {
        {
            let mut balance = self.balance.lock().unwrap();
            if *balance < amount.micros() {
                return Err(Refusal::NoCredits);
            }
            *balance -= amount.micros();
        }
        let hold = format!("hold-{request_id}");
        self.push(Event::Reserved {
            hold: hold.clone(),
            model: model.into(),
            amount: amount.micros(),
            request_id: request_id.into(),
        });
        Ok(HoldId(hold))
    }

    async fn settle(&self, hold: HoldId, usage: Option<&Usage>, cost: MicroUsd) {
        let amount = self.amount_of(&hold.0);
        assert!(cost.micros() <= amount, "settled above the hold");
        *self.balance.lock().unwrap() += amount - cost.micros();
        self.push(Event::Settled {
            hold: hold.0,
            usage: usage.copied(),
            cost: cost.micros(),
        });
    }

    async fn release(&self, hold: HoldId) {
        let amount = self.amount_of(&hold.0);
        *self.balance.lock().unwrap() += amount;
        self.push(Event::Released { hold: hold.0 });
    }

    fn upstream_failed(&self, _model: &str, failure: UpstreamFailure) {
        self.failures.lock().unwrap().push(failure);
    }
}
