//! [`RebalanceListener`]: the application's say in a rebalance.

use std::future::Future;
use std::pin::Pin;

use crate::consumer::Consumer;

/// A boxed future borrowed for `'a`, what the listener's methods return (so the trait can
/// be used as `Arc<dyn RebalanceListener>`).
pub type ListenerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Told about partitions coming and going, from inside [`Consumer::poll`] (or `recv`), so
/// nothing else of the consumer runs meanwhile. The methods are async and get the
/// consumer: they may commit ([`Consumer::commit`]), flush what they produced, or save
/// state before partitions move to another member, and the rebalance waits for them.
///
/// With `range` or `roundrobin` every partition is revoked before each rebalance and the
/// new assignment is handed out after it. With `cooperative-sticky` only the partitions
/// that move are revoked, and the member keeps consuming the others throughout.
///
/// ```
/// use strom_client::consumer::{Consumer, ListenerFuture, RebalanceListener};
///
/// struct CommitOnRevoke;
///
/// impl RebalanceListener for CommitOnRevoke {
///     fn on_partitions_revoked<'a>(
///         &'a self,
///         consumer: &'a Consumer,
///         partitions: &'a [(String, i32)],
///     ) -> ListenerFuture<'a> {
///         Box::pin(async move {
///             if let Err(e) = consumer.commit().await {
///                 eprintln!("commit before losing {partitions:?} failed: {e}");
///             }
///         })
///     }
/// }
/// ```
pub trait RebalanceListener: Send + Sync {
    /// `partitions` are about to go to other members: their positions are still held, and
    /// committing them now is the last chance.
    fn on_partitions_revoked<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        let _ = (consumer, partitions);
        Box::pin(async {})
    }

    /// `partitions` are now this member's; their positions are the committed offsets (or
    /// `auto.offset.reset`), which a `seek` here may change.
    fn on_partitions_assigned<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        let _ = (consumer, partitions);
        Box::pin(async {})
    }

    /// `partitions` were lost without a rebalance (the member was removed from the group,
    /// for example after missing heartbeats): other members may already own them, so
    /// committing is pointless. By default, the same as a revocation.
    fn on_partitions_lost<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        self.on_partitions_revoked(consumer, partitions)
    }
}

/// The listener used when the application gives none.
pub(crate) struct NoListener;

impl RebalanceListener for NoListener {}
