//! Where events come from: the Kubernetes watch ([`kube`]) or a recorded file ([`replay`]).
//! Both send [`SourceMsg`]s to the pipeline over one bounded channel and report through the
//! same [`SourceContext`].

pub mod kube;
pub mod objects;
pub mod replay;
pub mod wire;

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{event::Event, health::Health, metrics::Metrics};
use objects::Resource;

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
    /// A Pod, ReplicaSet, Job or Deployment was listed, added or updated.
    Object {
        object: Box<objects::KubeObject>,
        /// Seen in a list (the first at start, or a relist) rather than as a watch event: what it
        /// says may have happened long before.
        listed: bool,
    },
    /// A stream of this resource has listed every object (or is refused): the pipeline knows
    /// every owner there is.
    Listed(Resource),
    /// A watched object was deleted.
    ObjectDeleted(Box<objects::KubeObject>),
    /// Several of the above, in order: what one stream had received at once.
    Batch(Vec<SourceMsg>),
    /// The API server refuses the watch of this resource (403): no workloads or derived
    /// occurrences from it until it allows it.
    Forbidden(objects::Resource),
}

/// The channel from the sources to the pipeline. Deep enough to absorb a full list page
/// (500 events) per watched namespace while the pipeline catches up.
pub const CHANNEL_CAPACITY: usize = 4096;

/// What every source reports to: the pipeline's channel, the metrics and the health state.
#[derive(Clone)]
pub struct SourceContext {
    pub tx: mpsc::Sender<SourceMsg>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

/// Stream name → the resourceVersion it had reached when the exporter last stopped.
pub type Checkpoints = HashMap<String, String>;

/// The input, resolved once at start: a connected Kubernetes client, or a file to replay.
pub enum Input {
    Kube {
        client: ::kube::Client,
        settings: kube::KubeSettings,
    },
    /// A file of recorded events; `None` is stdin.
    Replay(Option<PathBuf>),
}

/// The running source of either kind.
pub enum Source {
    Kube(kube::KubeSource),
    Replay(replay::ReplaySource),
}

impl Source {
    /// The source for `input`; a watch resumes from `resume` where it has a checkpoint.
    pub fn new(input: Input, resume: Checkpoints, ctx: SourceContext) -> Self {
        match input {
            Input::Kube { client, settings } => {
                Self::Kube(kube::KubeSource::new(client, settings, resume, ctx))
            }
            Input::Replay(path) => Self::Replay(replay::ReplaySource::new(path, ctx)),
        }
    }

    /// How many streams report `Synced`: the pipeline is ready once all have.
    pub fn stream_count(&self) -> usize {
        match self {
            Self::Kube(k) => k.stream_count(),
            Self::Replay(_) => 1,
        }
    }

    /// Runs until shutdown; a finished replay returns and the rest of the exporter serves on.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            Self::Kube(k) => k.run(shutdown).await,
            Self::Replay(r) => r.run(shutdown).await,
        }
    }
}
