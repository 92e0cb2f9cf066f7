//! POSTs that arrive together are recorded together. A modality or a router sends one instance
//! per request, and for such a request PostgreSQL's work was mostly the transaction's own
//! (lookup planning, the change-feed lock, the commit's WAL flush), about seven times the
//! per-instance work of a 50-instance request. So at most [`IN_FLIGHT`] store transactions run
//! at once, and the POSTs that come while they do wait and go in the next one together, as
//! PostgreSQL's own commits share a WAL flush. A lone request starts at once; one that comes
//! while a store runs waits for it, which measured faster than running beside it (fewer
//! transactions, less of PostgreSQL's CPU). POSTs of many instances are not grouped (see
//! [`OWN_TRANSACTION_FROM`]).
//!
//! Each request still gets its own answer: the report of a group is split per request, and a
//! group whose transaction fails is stored again one request at a time, so that one bad request
//! fails alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use hds_dicom_model::Instance;
use tokio::sync::oneshot;

use crate::write::{NewInstance, StoreReport};
use crate::{Index, IndexError, Result};

/// Store transactions of grouped POSTs running at once. One keeps the groups largest and the
/// transactions fewest; PostgreSQL's per-transaction CPU is what a one-instance STOW spent most
/// on (`bench/dicom-ab.sh`, see docs/benchmarks.md).
const IN_FLIGHT: usize = 1;

/// Instances one group transaction holds at most: the arrays of one statement stay small.
const MAX_GROUP_INSTANCES: usize = 200;

/// A POST of this many instances or more is recorded at once, in a transaction of its own:
/// its instances already share that transaction's cost, and queued behind another group it
/// only waited. At 50 instances per request the one group transaction at a time was where a
/// request spent most of its time (see docs/benchmarks.md).
const OWN_TRANSACTION_FROM: usize = 10;

/// An instance whose file is durable already, owned so that the task recording its group can
/// hold it.
#[derive(Debug, Clone)]
pub struct DurableInstance {
    pub instance: Arc<Instance>,
    pub blob: String,
    pub size: i64,
}

impl DurableInstance {
    /// The instance as [`Index::store`] takes it.
    pub fn as_new(&self) -> NewInstance<'_> {
        NewInstance {
            instance: &self.instance,
            blob: self.blob.clone(),
            size: self.size,
        }
    }
}

struct Job {
    partition: String,
    items: Vec<DurableInstance>,
    done: oneshot::Sender<Result<StoreReport>>,
}

#[derive(Default)]
pub(crate) struct StoreGroups {
    state: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    running: usize,
}

impl Queue {
    /// The next group: the first job waiting and those after it for the same partition, up to
    /// [`MAX_GROUP_INSTANCES`] (the first always goes, whatever its size).
    fn next_group(&mut self) -> Vec<Job> {
        let Some(first) = self.waiting.pop_front() else {
            return Vec::new();
        };
        let mut size = first.items.len();
        let mut group = vec![first];
        let mut i = 0;
        while i < self.waiting.len() {
            let job = &self.waiting[i];
            if job.partition == group[0].partition && size + job.items.len() <= MAX_GROUP_INSTANCES
            {
                size += job.items.len();
                group.extend(self.waiting.remove(i));
            } else {
                i += 1;
            }
        }
        group
    }
}

impl Index {
    /// Records a POST's instances as [`Index::store`] does without `replace`: a POST of a few
    /// instances in one transaction with those that arrive while earlier ones are being
    /// recorded, a larger one in a transaction of its own at once. The
    /// outcome of every instance is what a store of this request alone would have given, as
    /// if the group's requests had come one after the other in the group's order.
    ///
    /// Once called, the store goes on even if the caller's future is dropped: the files are
    /// durable and the instances are recorded.
    pub async fn store_posted(
        &self,
        partition: &str,
        items: Vec<DurableInstance>,
        files_durable: std::result::Result<(), String>,
    ) -> Result<StoreReport> {
        files_durable.map_err(IndexError::FilesNotDurable)?;
        if items.len() >= OWN_TRANSACTION_FROM {
            let (index, partition) = (self.clone(), partition.to_owned());
            let alone = async move { index.store_alone(&partition, &items).await };
            return tokio::spawn(alone).await.unwrap_or_else(|e| {
                Err(IndexError::Interrupted(format!(
                    "the task recording this request's instances failed: {e}"
                )))
            });
        }
        let (done, answer) = oneshot::channel();
        let job = Job {
            partition: partition.to_owned(),
            items,
            done,
        };
        let start = {
            let mut q = self.groups.state.lock().unwrap_or_else(|e| e.into_inner());
            q.waiting.push_back(job);
            if q.running < IN_FLIGHT {
                q.running += 1;
                Some(q.next_group())
            } else {
                None
            }
        };
        if let Some(group) = start {
            tokio::spawn(self.clone().record_groups(group));
        }
        answer.await.unwrap_or_else(|_| {
            Err(IndexError::Interrupted(
                "the task recording this request's instances ended without an answer".into(),
            ))
        })
    }

    /// Records `group`, then every group that queued meanwhile, until none waits.
    async fn record_groups(self, mut group: Vec<Job>) {
        // Should a store panic, the slot is given back and what waits is answered by the next
        // request's task; the jobs in hand are answered by their dropped senders.
        let slot = Slot(&self.groups);
        loop {
            self.record(group).await;
            let mut q = self.groups.state.lock().unwrap_or_else(|e| e.into_inner());
            group = q.next_group();
            if group.is_empty() {
                q.running -= 1;
                std::mem::forget(slot);
                return;
            }
        }
    }

    async fn record(&self, group: Vec<Job>) {
        if let [job] = group.as_slice() {
            let report = self.store_alone(&job.partition, &job.items).await;
            send(group, vec![report]);
            return;
        }
        let items: Vec<NewInstance> = group
            .iter()
            .flat_map(|j| j.items.iter().map(DurableInstance::as_new))
            .collect();
        match self.store(&group[0].partition, &items, false, Ok(())).await {
            Ok(report) => {
                let mut outcomes = report.outcomes.into_iter();
                let mut warnings = report.warnings.into_iter();
                let reports = group
                    .iter()
                    .map(|j| {
                        Ok(StoreReport {
                            outcomes: outcomes.by_ref().take(j.items.len()).collect(),
                            warnings: warnings.by_ref().take(j.items.len()).collect(),
                        })
                    })
                    .collect();
                send(group, reports);
            }
            Err(e) => {
                tracing::debug!(error = %e, requests = group.len(),
                    "a grouped store failed; storing its requests one at a time");
                let mut reports = Vec::with_capacity(group.len());
                for job in &group {
                    reports.push(self.store_alone(&job.partition, &job.items).await);
                }
                send(group, reports);
            }
        }
    }

    /// One request's instances in a transaction of their own.
    async fn store_alone(&self, partition: &str, items: &[DurableInstance]) -> Result<StoreReport> {
        let items: Vec<NewInstance> = items.iter().map(DurableInstance::as_new).collect();
        self.store(partition, &items, false, Ok(())).await
    }
}

fn send(group: Vec<Job>, reports: Vec<Result<StoreReport>>) {
    for (job, report) in group.into_iter().zip(reports) {
        // A caller that went away needs no answer; its instances are recorded all the same.
        let _ = job.done.send(report);
    }
}

/// A running slot, given back if its task unwinds.
struct Slot<'a>(&'a StoreGroups);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut q = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        q.running -= 1;
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
