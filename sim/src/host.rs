//! The software of one simulated host: the deployed `p2p-net` driver over
//! turmoil's TCP with an in-memory downloads directory, plus a small loop
//! that carries out the scenario's commands. turmoil calls the factory
//! again when it restarts (bounces) the host; each life gets a new node
//! seed, hence a new id, as a restarted real node would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use p2p_core::{DisconnectReason, Event, Output, Target};
use p2p_net::{start, Events, MemStorage, NetEvent, NodeHandle, Storage, TapEvent, Transport};
use tokio::sync::mpsc;

use crate::config::{Sabotage, SimConfig};
use crate::sabotage::{BuggyStorage, BuggyTransport, TransportBug, TARGET};
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
    /// The simulated LAN segment the node announces itself on, if any
    /// (the `lan` scenario).
    pub(crate) lan: Option<crate::lan::LanSegment>,
}

/// One life of a host. Never returns `Ok`: a host runs until crashed; an
/// error ends the simulation with a report.
pub(crate) async fn run(world: Shared, cfg: Arc<SimConfig>, plan: HostPlan) -> turmoil::Result {
    let h = plan.idx;
    let life = lock(&world).begin_life(h);
    if life == 0 && !plan.start_delay.is_zero() {
        tokio::time::sleep(plan.start_delay).await;
    }
    let (mem, armed, meshed, net, intruders) = {
        let mut w = lock(&world);
        (
            // A fresh directory per life, but one across lives in the
            // swarm scenario (its partials and shared files survive).
            w.swarm_disk(h),
            w.sabotage.clone(),
            w.meshed.clone(),
            TurmoilTransport::new(w.resets.clone()),
            w.intruders.ip_set.clone(),
        )
    };
    // The deliberate bugs wrap the real pieces; without them the host runs
    // exactly the deployed transport and storage.
    let Some(bug) = cfg.sabotage else {
        return life_with(world, &cfg, plan, life, net, mem.clone(), mem).await;
    };
    let transport = BuggyTransport::new(
        net,
        TransportBug {
            bug,
            host: h,
            armed: armed.clone(),
            meshed,
            blacklist: Arc::default(),
            intruders,
        },
    );
    let swarm_target = lock(&world).swarm.target();
    match bug {
        Sabotage::CorruptCommit
        | Sabotage::EscapeDownloads
        | Sabotage::FailingCommit
        | Sabotage::PanicWrite
        | Sabotage::SwarmFlipWrite
        | Sabotage::SwarmLostRecord => {
            let storage = BuggyStorage::new(mem.clone(), bug, armed);
            life_with(world, &cfg, plan, life, transport, storage, mem).await
        }
        Sabotage::SwarmFailingCommit if h == swarm_target => {
            let storage = BuggyStorage::new(mem.clone(), bug, armed);
            life_with(world, &cfg, plan, life, transport, storage, mem).await
        }
        _ => life_with(world, &cfg, plan, life, transport, mem.clone(), mem).await,
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
    if let Some(segment) = &plan.lan {
        // Each life its own draws, as a restarted machine's.
        let ip = lock(&world).hosts[h].ip;
        net.lan = Some(Arc::new(segment.member(ip, cfg.lan_seed(h, life))));
    }
    let tap_world = world.clone();
    let hide_timeouts = cfg.sabotage == Some(Sabotage::HiddenTimeout);
    let lose_retire = cfg.sabotage == Some(Sabotage::LostRetire);
    let hide_rejects = cfg.sabotage == Some(Sabotage::SwarmHiddenReject);
    let single_source = cfg.sabotage == Some(Sabotage::SwarmSingleSource);
    net.tap = Some(Arc::new(move |ev| {
        let retire = matches!(
            ev,
            TapEvent::Output(Output::Event(Event::DuplicateRetired { .. }))
        );
        let reject = matches!(
            ev,
            TapEvent::Output(Output::Event(Event::ChunkRejected { .. }))
        );
        if (hide_timeouts && is_timeout_removal(ev))
            || (lose_retire && retire)
            || (hide_rejects && reject)
        {
            // The planted bug: the event never reaches the world.
            return;
        }
        if let (true, Some(trimmed)) = (single_source, largest_sender_only(ev)) {
            // The planted bug: the world sees one sender only.
            return lock(&tap_world).on_tap(h, life, &TapEvent::Output(&trimmed));
        }
        lock(&tap_world).on_tap(h, life, ev)
    }));
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
    serve(world, cfg.sabotage, h, life, node, events, rx, mem).await
}

/// `swarm-single-source`: a `DownloadComplete` with only its largest
/// sender left in `bytes_from`.
fn largest_sender_only(ev: &TapEvent<'_>) -> Option<Output> {
    let TapEvent::Output(Output::Event(Event::DownloadComplete {
        id,
        name,
        path,
        size,
        bytes_from,
    })) = ev
    else {
        return None;
    };
    let top = bytes_from
        .iter()
        .max_by_key(|(p, n)| (**n, std::cmp::Reverse((*p).clone())))
        .map(|(p, n)| (p.clone(), *n));
    Some(Output::Event(Event::DownloadComplete {
        id: *id,
        name: name.clone(),
        path: path.clone(),
        size: *size,
        bytes_from: top.into_iter().collect(),
    }))
}

/// A peer dropped for silence (`hidden-timeout` loses these).
fn is_timeout_removal(ev: &TapEvent<'_>) -> bool {
    matches!(
        ev,
        TapEvent::Output(Output::Event(Event::PeerDisconnected {
            reason: DisconnectReason::Timeout { .. },
            ..
        }))
    )
}

/// Asks the node to download `id` until it takes it: it refuses content
/// it knows no holder of (no index arrived yet, say after a restart), and
/// answers "already have" once it committed it. Any other refusal is a
/// failure of the host.
async fn get_until_taken(
    world: &Shared,
    h: usize,
    life: u32,
    node: &NodeHandle,
    id: p2p_core::ContentId,
) {
    use p2p_core::CommandError;
    use p2p_net::NetError;
    loop {
        match node.get(&id.to_hex(), None).await {
            Ok(_) | Err(NetError::Command(CommandError::AlreadyHave(_))) => return,
            Err(NetError::Command(
                CommandError::UnknownContent(_) | CommandError::TooManyDownloads(_),
            )) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => {
                let detail = format!("downloading {} was refused: {e}", id.short());
                lock(world).host_failed(h, life, detail);
                return;
            }
        }
    }
}

/// Carries out commands and watches the node's own events (the core's
/// events reach the world through the tap already).
#[allow(clippy::too_many_arguments)]
async fn serve(
    world: Shared,
    bug: Option<Sabotage>,
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
                        let times = match bug {
                            Some(b @ (Sabotage::ChatTwice | Sabotage::LostChat))
                                if h == TARGET && lock(&world).sabotage.swap(false, Ordering::Relaxed) =>
                            {
                                if b == Sabotage::ChatTwice { 2 } else { 0 }
                            }
                            _ => 1,
                        };
                        let slow = bug == Some(Sabotage::SlowChat);
                        tokio::task::spawn_local(async move {
                            if slow {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            // No peers is a legitimate answer; deliveries are
                            // checked against the connections of the sender.
                            for _ in 0..times {
                                let _ = node.chat(&text).await;
                            }
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
                    HostCmd::Share(path) => {
                        tokio::task::spawn_local(async move {
                            if let Err(e) = node.share(std::path::Path::new(&path)).await {
                                let detail = format!("sharing {path} was refused: {e}");
                                lock(&world).host_failed(h, life, detail);
                            }
                        });
                    }
                    HostCmd::Get(id) => {
                        tokio::task::spawn_local(async move {
                            get_until_taken(&world, h, life, &node, id).await;
                        });
                    }
                    HostCmd::Snapshot => {
                        let bug = bug.filter(|_| h == TARGET);
                        if bug == Some(Sabotage::MuteSnapshot) {
                            continue;
                        }
                        tokio::task::spawn_local(async move {
                            match node.peers().await {
                                Ok(mut peers) => {
                                    match bug {
                                        Some(Sabotage::ShortSnapshot) => {
                                            peers.pop();
                                        }
                                        Some(Sabotage::SwappedSnapshot) if peers.len() > 1 => {
                                            let first = peers[0].conn;
                                            for i in 0..peers.len() - 1 {
                                                peers[i].conn = peers[i + 1].conn;
                                            }
                                            if let Some(last) = peers.last_mut() {
                                                last.conn = first;
                                            }
                                        }
                                        _ => {}
                                    }
                                    lock(&world).snapshot(h, life, peers);
                                }
                                Err(e) => {
                                    let detail = format!("the node's peer table request failed: {e}");
                                    lock(&world).host_failed(h, life, detail);
                                }
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
