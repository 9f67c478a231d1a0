//! The bus wakes the node(s) holding a user's connections. It never holds the only copy of a
//! signal: the store does. [`LocalBus`] for one node; [`redis::RedisBus`] for several.

pub mod redis;

use crate::domain::UserId;
use crate::hub::{Hub, Push};

pub trait Bus: Send + Sync + 'static {
    /// Delivers `push` to `user`'s connections wherever they are. Must not block.
    fn publish(&self, user: UserId, push: Push);
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
}
