//! Where events come from: the Kubernetes watch ([`kube`]) or a recorded file ([`replay`]).
//! Both send [`SourceMsg`]s to the pipeline over one bounded channel.

pub mod kube;
pub mod replay;
pub mod wire;

use std::sync::Arc;

use crate::event::Event;

/// What a source tells the pipeline.
#[derive(Debug)]
pub enum SourceMsg {
    /// An Event object was listed, added or updated.
    Applied(Box<Event>),
    /// An Event object was deleted (TTL expiry): its uid will not be seen again.
    Deleted { uid: String },
    /// One stream finished its initial list, or resumed from a stored checkpoint (or the
    /// replay input ended).
    Synced,
    /// The stream has delivered everything up to this resourceVersion: a restart resumes here.
    Checkpoint {
        stream: Arc<str>,
        resource_version: String,
    },
}

/// The channel from the sources to the pipeline. Deep enough to absorb a full list page
/// (500 events) per watched namespace while the pipeline catches up.
pub const CHANNEL_CAPACITY: usize = 4096;
