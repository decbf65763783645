//! The software of one simulated host: the deployed `p2p-net` driver over
//! turmoil's TCP with an in-memory downloads directory, plus a small loop
//! that carries out the scenario's commands. turmoil calls the factory
//! again when it restarts (bounces) the host; each life gets a new node
//! seed, hence a new id, as a restarted real node would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use p2p_core::Target;
use p2p_net::{start, Events, MemStorage, NetEvent, NodeHandle, Storage, Transport};
use tokio::sync::mpsc;

use crate::config::{Sabotage, SimConfig};
use crate::sabotage::{CorruptingStorage, CorruptingTransport};
use crate::transport::TurmoilTransport;
use crate::world::{lock, HostCmd, Shared};

/// Where a host's outgoing files live in its in-memory store.
fn outbox_path(name: &str) -> PathBuf {
    PathBuf::from("/outbox").join(name)
}

/// How host `idx` comes up.
#[derive(Clone)]
pub(crate) struct HostPlan {
    pub(crate) idx: usize,
    /// Delay before the first life starts (restarts start at once).
    pub(crate) start_delay: Duration,
    /// Addresses to bootstrap to.
    pub(crate) bootstrap: Vec<String>,
}

/// One life of a host. Never returns `Ok`: a host runs until crashed; an
/// error ends the simulation with a report.
pub(crate) async fn run(world: Shared, cfg: Arc<SimConfig>, plan: HostPlan) -> turmoil::Result {
    let h = plan.idx;
    let life = lock(&world).begin_life(h);
    if life == 0 && !plan.start_delay.is_zero() {
        tokio::time::sleep(plan.start_delay).await;
    }
    let mem = MemStorage::default();
    let sabotage = cfg.sabotage;
    let armed = lock(&world).sabotage.clone();
    // The deliberate bugs wrap the real pieces; without them the host runs
    // exactly the deployed transport and storage.
    match sabotage {
        Some(Sabotage::CorruptCommit) => {
            let storage = CorruptingStorage::new(mem.clone(), armed);
            life_with(world, &cfg, plan, life, TurmoilTransport, storage, mem).await
        }
        Some(Sabotage::CorruptWire) => {
            let transport = CorruptingTransport::new(armed);
            life_with(world, &cfg, plan, life, transport, mem.clone(), mem).await
        }
        None => life_with(world, &cfg, plan, life, TurmoilTransport, mem.clone(), mem).await,
    }
}

async fn life_with<T: Transport, S: Storage>(
    world: Shared,
    cfg: &SimConfig,
    plan: HostPlan,
    life: u32,
    transport: T,
    storage: S,
    mem: MemStorage,
) -> turmoil::Result {
    let h = plan.idx;
    let mut net = cfg.net_config(h, life);
    net.bootstrap = plan.bootstrap.clone();
    let tap_world = world.clone();
    net.tap = Some(Arc::new(move |ev| lock(&tap_world).on_tap(h, life, ev)));
    let (node, events) = start(net, transport, storage).await.map_err(|e| {
        format!(
            "{}: the node did not start: {e}",
            crate::config::host_name(h)
        )
    })?;
    let (tx, rx) = mpsc::unbounded_channel();
    {
        // No await since `start` returned: the driver has not run yet, so
        // the world knows the id before the first tap.
        let at = turmoil::sim_elapsed().unwrap_or_default();
        lock(&world).host_started(h, life, node.id().clone(), mem.clone(), tx, at);
    }
    serve(world, h, life, node, events, rx, mem).await
}

/// Carries out commands and watches the node's own events (the core's
/// events reach the world through the tap already).
async fn serve(
    world: Shared,
    h: usize,
    life: u32,
    node: NodeHandle,
    mut events: Events,
    mut cmds: mpsc::UnboundedReceiver<HostCmd>,
    mem: MemStorage,
) -> turmoil::Result {
    loop {
        // `biased`: tokio would otherwise pick a branch with its own RNG,
        // which is not seeded without `--cfg tokio_unstable`.
        tokio::select! {
            biased;
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else {
                    return Err("the command channel closed".into());
                };
                let (world, node) = (world.clone(), node.clone());
                match cmd {
                    HostCmd::Chat(text) => {
                        tokio::task::spawn_local(async move {
                            // No peers is a legitimate answer; deliveries are
                            // checked from what was transmitted.
                            let _ = node.chat(&text).await;
                        });
                    }
                    HostCmd::SendFile(name) => {
                        let data = lock(&world).files.get(&name).map(|f| f.data.clone());
                        let Some(data) = data else { continue };
                        mem.add_source(outbox_path(&name), data.as_ref().clone());
                        tokio::task::spawn_local(async move {
                            let r = node.send_file(&outbox_path(&name), Target::All).await;
                            lock(&world).file_send_done(&name, r.map_err(|e| e.to_string()));
                        });
                    }
                    HostCmd::Snapshot => {
                        tokio::task::spawn_local(async move {
                            if let Ok(peers) = node.peers().await {
                                lock(&world).snapshot(h, life, peers);
                            }
                        });
                    }
                }
            }
            ev = events.next() => match ev {
                Some(NetEvent::Stopped) | None => {
                    return Err(format!("{}: the node stopped", crate::config::host_name(h)).into());
                }
                Some(_) => {}
            },
        }
    }
}
