//! The bus wakes the node(s) holding a user's connections. It never holds the only copy of a
//! signal: the store does. [`LocalBus`] for one node; [`redis::RedisBus`] for several.

pub mod redis;

use crate::domain::UserId;
use crate::hub::{Hub, Push};

pub trait Bus: Send + Sync + 'static {
    /// Delivers `push` to `user`'s connections wherever they are. Must not block.
    fn publish(&self, user: UserId, push: Push);

    /// Whether `user` has a live connection on any node (as far as this node knows). Must not
    /// block: it is asked on every send.
    fn is_online(&self, user: UserId) -> bool;
}

/// One node: publishing is handing the push to this node's hub.
pub struct LocalBus {
    hub: Hub,
}

impl LocalBus {
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }
}

impl Bus for LocalBus {
    fn publish(&self, user: UserId, push: Push) {
        self.hub.dispatch(user, push);
    }

    fn is_online(&self, user: UserId) -> bool {
        self.hub.is_online(user)
    }
}
