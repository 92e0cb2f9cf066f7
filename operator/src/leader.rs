//! Leader election on a Lease, so two operator replicas never reconcile at once.
//!
//! The follower waits; the leader runs the controllers. A leader that loses the Lease exits
//! rather than trying to stop its controllers mid-reconcile: Kubernetes restarts it as a
//! follower, and its half-done work is redone by the new leader from the spec.

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

pub struct Election {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
}

/// Waits until this replica holds the Lease; the returned future resolves when it loses it.
pub async fn acquire(
    client: Client,
    e: Election,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let manager = LeaseManagerBuilder::new(client, &e.lease_name)
        .with_namespace(&e.namespace)
        .with_identity(&e.identity)
        .with_field_manager(format!("hds-operator-lease-{}", e.identity))
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    tracing::info!(lease = %e.lease_name, namespace = %e.namespace, identity = %e.identity, "waiting for leadership");
    while !*leading.borrow_and_update() {
        leading.changed().await?;
    }
    tracing::info!(lease = %e.lease_name, "leading");
    Ok(async move {
        loop {
            if leading.changed().await.is_err() || !*leading.borrow() {
                break;
            }
        }
        // Keep the manager alive until here; dropping the channel stops it.
        drop(task);
    })
}
