//! One worker per RX queue: takes frames from its AF_XDP socket, runs the attached
//! program on each, and carries out the verdict.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bpftime_vm::maps::devmap::DevMap;
use bpftime_vm::maps::map_type;
use bpftime_vm::program::{Program, Session};
use bpftime_vm::run::{
    RedirectInfo, XdpCtx, XDP_ABORTED, XDP_DROP, XDP_PACKET_HEADROOM, XDP_PASS, XDP_REDIRECT,
    XDP_TAILROOM, XDP_TX,
};

use crate::csum;
use crate::netns::PacketTx;
use crate::xsk::{Xsk, FRAME_SIZE};
use crate::{cpu, sys, QueueStats, WorkerHost, XdpProgram};

/// `BPF_F_BROADCAST` / `BPF_F_EXCLUDE_INGRESS` of `bpf_redirect_map`.
const BPF_F_BROADCAST: u64 = 8;
const BPF_F_EXCLUDE_INGRESS: u64 = 16;

/// Frames taken from RX per batch.
const BATCH: usize = 64;

/// The program slot of an attachment, swapped atomically by `replace`.
pub(crate) struct ProgSlot(pub Arc<dyn XdpProgram>);

/// Counters of one queue, updated by its worker only (Relaxed), read by `stats`.
#[derive(Default)]
pub(crate) struct QueueCounters {
    rx: AtomicU64,
    rx_bytes: AtomicU64,
    drop: AtomicU64,
    pass: AtomicU64,
    tx: AtomicU64,
    redirect: AtomicU64,
    aborted: AtomicU64,
    exceptions: AtomicU64,
    pass_fail: AtomicU64,
    csum_finished: AtomicU64,
    tx_fail: AtomicU64,
    redirect_fail: AtomicU64,
    k_rx_dropped: AtomicU64,
    k_rx_ring_full: AtomicU64,
    k_fill_empty: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    // Single writer: a plain load+store is enough and cheaper than fetch_add.
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl QueueCounters {
    pub(crate) fn snapshot(&self, queue: u32) -> QueueStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QueueStats {
            queue,
            rx_packets: g(&self.rx),
            rx_bytes: g(&self.rx_bytes),
            drop: g(&self.drop),
            pass: g(&self.pass),
            tx: g(&self.tx),
            redirect: g(&self.redirect),
            aborted: g(&self.aborted),
            exceptions: g(&self.exceptions),
            pass_failures: g(&self.pass_fail),
            csum_finished: g(&self.csum_finished),
            tx_failures: g(&self.tx_fail),
            redirect_failures: g(&self.redirect_fail),
            kernel_rx_dropped: g(&self.k_rx_dropped),
            kernel_rx_ring_full: g(&self.k_rx_ring_full),
            kernel_fill_ring_empty: g(&self.k_fill_empty),
            worker_cpu_ns: 0,
        }
    }
}

/// What a worker needs; moved into its thread.
pub(crate) struct Worker {
    pub xsk: Xsk,
    pub ifindex: u32,
    pub queue: u32,
    pub prog: Arc<ArcSwap<ProgSlot>>,
    pub pass_stub: Arc<OwnedFd>,
    pub counters: Arc<QueueCounters>,
    pub stop: Arc<crate::stop::Stop>,
    pub pin: Option<usize>,
    pub ptx: Option<PacketTx>,
    /// The TAP reinjection path of native mode (PASS without metadata).
    pub reinject: Option<Arc<crate::tap::Reinject>>,
    /// A frame-sized buffer for DEVMAP programs (they run on a copy).
    pub scratch: Vec<u8>,
    /// The interface's MTU (segment size for GSO super-frames).
    pub mtu: usize,
    /// Where a descriptor chain (a packet over several frames) is put together.
    pub big: Vec<u8>,
    /// How long the worker keeps polling its ring after the last packet before it
    /// sleeps in `poll()` ([`Options::busy_poll`](crate::Options::busy_poll)).
    pub busy_poll: std::time::Duration,
}

impl Worker {
    pub(crate) fn run(mut self) {
        if let Some(c) = self.pin {
            if let Err(e) = cpu::pin(c) {
                tracing::warn!(cpu = c, "cannot pin worker: {e}");
            }
        }
        // The program run state of this thread, kept from frame to frame.
        let mut session = Session::new();
        let mut descs: Vec<(u64, u32, bool)> = Vec::with_capacity(BATCH);
        let mut recycle: Vec<u64> = Vec::with_capacity(self.xsk.nframes() as usize);
        let mut txq: Vec<(u64, u32)> = Vec::with_capacity(BATCH);
        let mut tx_inflight: usize = 0;
        let mut idle_rounds = 0u32;
        // The last time a packet came: within `busy_poll` of it the worker spins.
        let mut last = std::time::Instant::now();
        while !self.stop.is_set() {
            // Sent frames come back free.
            if tx_inflight > 0 {
                let before = recycle.len();
                self.xsk.comp_drain(&mut recycle);
                tx_inflight -= recycle.len() - before;
            }
            descs.clear();
            let peeked = self.xsk.rx_peek(&mut descs, BATCH);
            // Whole packets only: a chain (XDP_USE_SG) ends with a descriptor without
            // the continuation flag; a cut-off chain waits for the next round.
            let n = descs
                .iter()
                .rposition(|d| !d.2)
                .map_or(0, |i| i + 1)
                .min(peeked);
            if n == 0 {
                // Nothing to run: no epoch pin may outlive the batch (it would hold
                // back the reclamation of every deleted hash element).
                session.quiesce();
                self.flush(&mut recycle, &mut txq, &mut tx_inflight);
                if tx_inflight > 0 && self.xsk.tx_needs_wakeup() {
                    let _ = self.xsk.kick_tx();
                }
                idle_rounds += 1;
                if !self.busy_poll.is_zero()
                    && last.elapsed() < self.busy_poll
                    && !self.xsk.fill_needs_wakeup()
                {
                    std::hint::spin_loop();
                    continue;
                }
                if idle_rounds > 64 || self.xsk.fill_needs_wakeup() {
                    self.refresh_kernel_stats();
                    // Idle: sleep until a packet or the end comes (a second at most,
                    // for the kernel's counters in `status`).
                    self.xsk
                        .poll_rx(if tx_inflight > 0 { 1 } else { 1000 }, self.stop.fd());
                    idle_rounds = 0;
                }
                continue;
            }
            idle_rounds = 0;
            if !self.busy_poll.is_zero() {
                last = std::time::Instant::now();
            }
            let cpu = self.pin.map_or_else(cpu::current, |c| c as u32);
            // One program per batch: each packet is run by exactly one program, and the
            // guard keeps it alive until the batch is done (replace is atomic per packet).
            let slot = self.prog.load();
            let prog = &slot.0;
            // Packets: chains count once (their last descriptor has no continuation).
            inc(
                &self.counters.rx,
                descs[..n].iter().filter(|d| !d.2).count() as u64,
            );
            inc(
                &self.counters.rx_bytes,
                descs[..n].iter().map(|d| d.1 as u64).sum(),
            );
            let mut i = 0;
            while i < n {
                let end = i + descs[i..n].iter().position(|d| !d.2).unwrap_or(n - i - 1) + 1;
                if end - i == 1 {
                    let (addr, len, _) = descs[i];
                    self.one(
                        &mut session,
                        prog.as_ref(),
                        cpu,
                        addr,
                        len,
                        &mut recycle,
                        &mut txq,
                    );
                } else {
                    self.chain(
                        &mut session,
                        prog.as_ref(),
                        cpu,
                        &descs[i..end],
                        &mut recycle,
                    );
                }
                i = end;
            }
            drop(slot);
            self.xsk.rx_release(n);
            self.flush(&mut recycle, &mut txq, &mut tx_inflight);
        }
        self.refresh_kernel_stats();
    }

    /// Returns free frames to FILL and queued frames to TX (with a kick).
    fn flush(
        &mut self,
        recycle: &mut Vec<u64>,
        txq: &mut Vec<(u64, u32)>,
        tx_inflight: &mut usize,
    ) {
        if !txq.is_empty() {
            let sent = self.xsk.tx_submit(txq);
            *tx_inflight += sent;
            inc(&self.counters.tx, sent as u64);
            if sent < txq.len() {
                inc(&self.counters.tx_fail, (txq.len() - sent) as u64);
                for &(a, _) in &txq[sent..] {
                    recycle.push(self.xsk.frame_of(a));
                }
            }
            txq.clear();
            if self.xsk.tx_needs_wakeup() {
                if let Err(e) = self.xsk.kick_tx() {
                    tracing::debug!("tx kick: {e}");
                }
            }
        }
        if !recycle.is_empty() {
            let done = self.xsk.fill_submit(recycle);
            recycle.drain(..done);
        }
    }

    fn refresh_kernel_stats(&self) {
        if let Some(st) = self.xsk.kernel_stats() {
            self.counters
                .k_rx_dropped
                .store(st.rx_dropped, Ordering::Relaxed);
            self.counters
                .k_rx_ring_full
                .store(st.rx_ring_full, Ordering::Relaxed);
            self.counters
                .k_fill_empty
                .store(st.rx_fill_ring_empty_descs, Ordering::Relaxed);
        }
    }

    /// Runs the program on one frame and carries out its verdict.
    #[allow(clippy::too_many_arguments)]
    fn one(
        &mut self,
        session: &mut Session,
        prog: &dyn XdpProgram,
        cpu: u32,
        addr: u64,
        len: u32,
        recycle: &mut Vec<u64>,
        txq: &mut Vec<(u64, u32)>,
    ) {
        let frame = self.xsk.frame_of(addr);
        if !self.xsk.valid(addr, len) {
            inc(&self.counters.exceptions, 1);
            recycle.push(frame);
            return;
        }
        let base = self.xsk.umem_base();
        let hard = base + frame;
        let mut ctx = XdpCtx {
            data: base + addr,
            data_end: base + addr + len as u64,
            data_meta: base + addr,
            ingress_ifindex: self.ifindex,
            rx_queue_index: self.queue,
            egress_ifindex: 0,
            _pad: 0,
            hard_start: hard,
            frame_end: hard + FRAME_SIZE as u64 - XDP_TAILROOM as u64,
        };
        // CHECKSUM_PARTIAL is the kernel's state of the frame as received: read it
        // before the program can change the bytes (see `csum`).
        let partial = self.xsk.bytes(addr, len as usize).and_then(csum::detect);
        let (verdict, redirect) = prog.run_in(session, &mut ctx, cpu);
        // The program's helpers keep these invariants; a context outside its frame
        // is a bug of the program runner, counted and dropped, never followed.
        let sane = hard <= ctx.data_meta
            && ctx.data_meta <= ctx.data
            && ctx.data <= ctx.data_end
            && ctx.data_end <= hard + FRAME_SIZE as u64;
        if !sane {
            inc(&self.counters.exceptions, 1);
            recycle.push(frame);
            return;
        }
        let (off, plen) = (ctx.data - base, (ctx.data_end - ctx.data) as u32);
        if let Some(p) = partial {
            if matches!(verdict, XDP_PASS | XDP_TX | XDP_REDIRECT) {
                // csum_start stays at the same byte of the buffer when data moves.
                let start = (addr + p.start as u64).checked_sub(off);
                let done = match (start, self.xsk.bytes_mut(off, plen as usize)) {
                    (Some(s), Some(pkt)) => csum::finish(pkt, s as usize, &p),
                    _ => false,
                };
                inc(&self.counters.csum_finished, done as u64);
            }
        }
        match verdict {
            XDP_DROP => {
                inc(&self.counters.drop, 1);
                recycle.push(frame);
            }
            XDP_TX => txq.push((off, plen)),
            XDP_PASS => {
                inc(&self.counters.pass, 1);
                let meta = (ctx.data - ctx.data_meta) as u32;
                let ok = match self.xsk.bytes(ctx.data_meta - base, (plen + meta) as usize) {
                    Some(bytes) => match &self.reinject {
                        Some(tap) if meta == 0 => tap
                            .send(bytes)
                            .map_err(|e| tracing::debug!("pass reinjection (TAP): {e}"))
                            .is_ok(),
                        _ => sys::test_run_live(
                            &self.pass_stub,
                            bytes,
                            meta,
                            self.ifindex,
                            self.queue,
                        )
                        .map_err(|e| tracing::debug!("pass reinjection: {e}"))
                        .is_ok(),
                    },
                    None => false,
                };
                if !ok {
                    inc(&self.counters.pass_fail, 1);
                }
                recycle.push(frame);
            }
            XDP_REDIRECT => {
                inc(&self.counters.redirect, 1);
                self.redirect(&redirect, cpu, off, plen, recycle, txq);
            }
            XDP_ABORTED => {
                inc(&self.counters.aborted, 1);
                inc(&self.counters.exceptions, 1);
                recycle.push(frame);
            }
            _ => {
                // The kernel's bpf_warn_invalid_xdp_action: dropped as an exception.
                inc(&self.counters.exceptions, 1);
                recycle.push(frame);
            }
        }
    }

    /// A packet over several frames (a GSO super-frame of generic mode): put together
    /// in `big` and run like any frame. What it passes goes to the TAP as the one GSO
    /// packet it was ([`pass_big`]); without a TAP, and for TX and REDIRECT, it leaves
    /// cut to the MTU ([`gso`](crate::gso)): PASS through live frames, TX and REDIRECT
    /// through AF_PACKET. Its frames go back to FILL.
    fn chain(
        &mut self,
        session: &mut Session,
        prog: &dyn XdpProgram,
        cpu: u32,
        descs: &[(u64, u32, bool)],
        recycle: &mut Vec<u64>,
    ) {
        let head = XDP_PACKET_HEADROOM;
        let total: usize = descs.iter().map(|d| d.1 as usize).sum();
        let size = head + total + XDP_TAILROOM;
        if self.big.len() < size {
            self.big.resize(size, 0);
        }
        let mut at = head;
        let mut ok = true;
        for &(addr, len, _) in descs {
            match self.xsk.bytes(addr, len as usize) {
                Some(b) => self.big[at..at + b.len()].copy_from_slice(b),
                None => ok = false,
            }
            at += len as usize;
            recycle.push(self.xsk.frame_of(addr));
        }
        if !ok {
            inc(&self.counters.exceptions, 1);
            return;
        }
        let hard = self.big.as_mut_ptr() as u64;
        let mut ctx = XdpCtx {
            data: hard + head as u64,
            data_end: hard + (head + total) as u64,
            data_meta: hard + head as u64,
            ingress_ifindex: self.ifindex,
            rx_queue_index: self.queue,
            egress_ifindex: 0,
            _pad: 0,
            hard_start: hard,
            frame_end: hard + (size - XDP_TAILROOM) as u64,
        };
        let (verdict, redirect) = prog.run_in(session, &mut ctx, cpu);
        let sane = hard <= ctx.data_meta
            && ctx.data_meta <= ctx.data
            && ctx.data <= ctx.data_end
            && ctx.data_end <= hard + size as u64;
        if !sane {
            inc(&self.counters.exceptions, 1);
            return;
        }
        let (lo, hi) = ((ctx.data - hard) as usize, (ctx.data_end - hard) as usize);
        if let (XDP_PASS, Some(tap)) = (verdict, &self.reinject) {
            inc(&self.counters.pass, 1);
            if !pass_big(tap, &mut self.big[lo..hi], self.mtu) {
                inc(&self.counters.pass_fail, 1);
            }
            return;
        }
        let pkt = &self.big[lo..hi];
        // What leaves must fit the device (its MTU) and, for PASS, a live-frame test run
        // (a page less headroom and the skb_shared_info tailroom, 512 with margin: above
        // that the kernel wants fragments). A TCP receiver takes segments smaller than
        // the MTU, so PASS cuts to both.
        const LIVE_MAX: usize = 4096 - XDP_PACKET_HEADROOM - 512;
        let limit = if verdict == XDP_PASS {
            self.mtu.min(LIVE_MAX - 18)
        } else {
            self.mtu
        };
        let cut = || -> Option<Vec<Vec<u8>>> {
            if pkt.len() <= limit + 18 {
                let mut one = pkt.to_vec();
                if let Some(p) = csum::detect(&one) {
                    csum::finish(&mut one, p.start, &p);
                }
                return Some(vec![one]);
            }
            crate::gso::tcp_segments(pkt, limit)
        };
        match verdict {
            XDP_DROP => inc(&self.counters.drop, 1),
            XDP_PASS => {
                inc(&self.counters.pass, 1);
                let sent = cut().is_some_and(|segs| {
                    segs.iter().all(|s| {
                        sys::test_run_live(&self.pass_stub, s, 0, self.ifindex, self.queue).is_ok()
                    })
                });
                if !sent {
                    inc(&self.counters.pass_fail, 1);
                }
            }
            XDP_TX | XDP_REDIRECT => {
                let (ok_ctr, fail_ctr) = if verdict == XDP_TX {
                    (&self.counters.tx, &self.counters.tx_fail)
                } else {
                    (&self.counters.redirect, &self.counters.redirect_fail)
                };
                inc(ok_ctr, 1);
                let targets: Vec<u32> = if verdict == XDP_TX {
                    vec![self.ifindex]
                } else {
                    resolve_targets(&redirect, self.ifindex)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| t.ifindex)
                        .collect()
                };
                let segs = cut();
                let sent = match (&self.ptx, &segs) {
                    (Some(ptx), Some(segs)) if !targets.is_empty() => targets
                        .iter()
                        .all(|&t| segs.iter().all(|s| ptx.send(t, s).is_ok())),
                    _ => false,
                };
                if !sent {
                    inc(fail_ctr, 1);
                }
            }
            XDP_ABORTED => {
                inc(&self.counters.aborted, 1);
                inc(&self.counters.exceptions, 1);
            }
            _ => inc(&self.counters.exceptions, 1),
        }
    }

    /// XDP_REDIRECT: to the ingress interface (our TX ring) or another interface of
    /// the namespace (AF_PACKET), by ifindex or through a DEVMAP/DEVMAP_HASH entry
    /// (whose own program, if any, runs first on a copy, as `dev_map_bpf_prog_run`).
    fn redirect(
        &mut self,
        info: &RedirectInfo,
        cpu: u32,
        off: u64,
        len: u32,
        recycle: &mut Vec<u64>,
        txq: &mut Vec<(u64, u32)>,
    ) {
        let frame = self.xsk.frame_of(off);
        let targets = match resolve_targets(info, self.ifindex) {
            Some(t) if !t.is_empty() => t,
            _ => {
                inc(&self.counters.redirect_fail, 1);
                recycle.push(frame);
                return;
            }
        };
        let mut to_self = false;
        for t in targets {
            if t.ifindex == self.ifindex && t.prog.is_none() && !to_self {
                to_self = true;
                continue;
            }
            let Some(bytes) = self.xsk.bytes(off, len as usize) else {
                inc(&self.counters.redirect_fail, 1);
                continue;
            };
            let out = match &t.prog {
                None => Some(bytes),
                Some(p) => {
                    let (head, rest) = self.scratch.split_at_mut(XDP_PACKET_HEADROOM);
                    rest[..bytes.len()].copy_from_slice(bytes);
                    let hard = head.as_mut_ptr() as u64;
                    let data = hard + XDP_PACKET_HEADROOM as u64;
                    let mut ctx = XdpCtx {
                        data,
                        data_end: data + bytes.len() as u64,
                        data_meta: data,
                        ingress_ifindex: self.ifindex,
                        rx_queue_index: self.queue,
                        egress_ifindex: t.ifindex,
                        _pad: 0,
                        hard_start: hard,
                        frame_end: hard + FRAME_SIZE as u64 - XDP_TAILROOM as u64,
                    };
                    let r = p.run_xdp(&mut ctx, cpu, &WorkerHost::default());
                    let end = hard + FRAME_SIZE as u64;
                    let sane = hard <= ctx.data && ctx.data <= ctx.data_end && ctx.data_end <= end;
                    match r.verdict {
                        XDP_PASS if sane => {
                            let (a, b) =
                                ((ctx.data - hard) as usize, (ctx.data_end - hard) as usize);
                            Some(&self.scratch[a..b])
                        }
                        XDP_DROP => None,
                        _ => {
                            // The kernel: bpf_warn_invalid_xdp_action + an exception.
                            inc(&self.counters.exceptions, 1);
                            None
                        }
                    }
                }
            };
            let Some(out) = out else { continue };
            let ok = match &self.ptx {
                Some(ptx) => ptx
                    .send(t.ifindex, out)
                    .map_err(|e| tracing::debug!(ifindex = t.ifindex, "redirect: {e}"))
                    .is_ok(),
                None => false,
            };
            if !ok {
                inc(&self.counters.redirect_fail, 1);
            }
        }
        if to_self {
            txq.push((off, len));
        } else {
            recycle.push(frame);
        }
    }
}

/// One destination of an XDP_REDIRECT.
#[derive(Clone)]
pub(crate) struct Target {
    pub ifindex: u32,
    /// The DEVMAP entry's own program (runs with egress_ifindex set).
    pub prog: Option<Arc<Program>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Target({}{})",
            self.ifindex,
            if self.prog.is_some() { "+prog" } else { "" }
        )
    }
}

fn target(ifindex: u32) -> Target {
    Target {
        ifindex,
        prog: None,
    }
}

/// The interfaces an XDP_REDIRECT goes to; None when it cannot be carried out
/// (no target, a map type other than DEVMAP/DEVMAP_HASH, a missing entry).
/// Broadcast (BPF_F_BROADCAST) goes to every entry, as the kernel's
/// `dev_map_enqueue_multi`, less the ingress with BPF_F_EXCLUDE_INGRESS.
pub(crate) fn resolve_targets(info: &RedirectInfo, ingress: u32) -> Option<Vec<Target>> {
    let Some(map) = &info.map else {
        return (info.ifindex != 0).then(|| vec![target(info.ifindex)]);
    };
    let attr = map.attr();
    if attr.map_type != map_type::DEVMAP && attr.map_type != map_type::DEVMAP_HASH {
        return None;
    }
    let broadcast = info.flags & BPF_F_BROADCAST != 0;
    let keep = |t: u32| t != 0 && !(info.flags & BPF_F_EXCLUDE_INGRESS != 0 && t == ingress);
    if let Some(dm) = map.as_any().downcast_ref::<DevMap>() {
        if broadcast {
            let all = dm.all().into_iter().filter(|(_, e)| keep(e.ifindex));
            return Some(
                all.map(|(_, e)| Target {
                    ifindex: e.ifindex,
                    prog: e.prog.as_ref().map(|(_, p)| p.clone()),
                })
                .collect(),
            );
        }
        return dm.get(info.key).map(|e| {
            vec![Target {
                ifindex: e.ifindex,
                prog: e.prog.as_ref().map(|(_, p)| p.clone()),
            }]
        });
    }
    // Another implementation of a devmap: through the userspace view of its entries.
    let ksize = attr.key_size as usize;
    let mut value = vec![0u8; map.sys_value_size().max(4)];
    let ifindex_of = |value: &[u8]| u32::from_ne_bytes(value[..4].try_into().expect("4 bytes"));
    if broadcast {
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        let mut next = vec![0u8; ksize];
        while map.sys_get_next_key(key.as_deref(), &mut next).is_ok()
            && out.len() <= attr.max_entries as usize
        {
            if map.sys_lookup(&next, &mut value, 0).is_ok() && keep(ifindex_of(&value)) {
                out.push(target(ifindex_of(&value)));
            }
            key = Some(next.clone());
        }
        return Some(out);
    }
    let mut key = vec![0u8; ksize];
    let k = info.key.to_ne_bytes();
    let n = ksize.min(4);
    key[..n].copy_from_slice(&k[..n]);
    map.sys_lookup(&key, &mut value, 0)
        .ok()
        .map(|()| vec![target(ifindex_of(&value))])
}

/// XDP_PASS of a packet bigger than one frame through the TAP: one write, as a GSO
/// packet when it is TCP larger than the MTU (the kernel's XDP_PASS hands the stack the
/// GSO skb itself), else as it is, with its checksum finished; a TCP packet the GSO
/// header cannot describe is cut to the MTU. `false` when nothing could be sent.
fn pass_big(tap: &crate::tap::Reinject, pkt: &mut [u8], mtu: usize) -> bool {
    let sent = if pkt.len() <= mtu + 18 {
        if let Some(p) = csum::detect(pkt) {
            csum::finish(pkt, p.start, &p);
        }
        tap.send(pkt)
    } else if let Some(g) = crate::gso::as_gso_packet(pkt, mtu) {
        tap.send_gso(pkt, &g)
    } else {
        match crate::gso::tcp_segments(pkt, mtu) {
            Some(segs) => segs.iter().try_for_each(|s| tap.send(s)),
            None => return false,
        }
    };
    sent.map_err(|e| tracing::debug!("pass reinjection (TAP): {e}"))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpftime_vm::maps::{create, MapAttr};

    fn ifs(t: Option<Vec<Target>>) -> Option<Vec<u32>> {
        t.map(|v| v.iter().map(|t| t.ifindex).collect())
    }

    fn devmap(t: u32) -> Arc<dyn bpftime_vm::maps::Map> {
        create(&MapAttr {
            map_type: t,
            key_size: 4,
            value_size: 4,
            max_entries: 8,
            ..MapAttr::default()
        })
        .expect("devmap")
    }

    #[test]
    fn redirect_by_ifindex() {
        let r = RedirectInfo {
            ifindex: 5,
            ..RedirectInfo::default()
        };
        assert_eq!(ifs(resolve_targets(&r, 1)), Some(vec![5]));
        assert_eq!(ifs(resolve_targets(&RedirectInfo::default(), 1)), None);
    }

    #[test]
    fn redirect_through_devmap_and_broadcast() {
        for t in [map_type::DEVMAP, map_type::DEVMAP_HASH] {
            let m = devmap(t);
            m.sys_update(&3u32.to_ne_bytes(), &7u32.to_ne_bytes(), 0)
                .unwrap();
            m.sys_update(&4u32.to_ne_bytes(), &1u32.to_ne_bytes(), 0)
                .unwrap();
            let one = RedirectInfo {
                map: Some(m.clone()),
                key: 3,
                ..RedirectInfo::default()
            };
            assert_eq!(ifs(resolve_targets(&one, 1)), Some(vec![7]));
            let miss = RedirectInfo {
                map: Some(m.clone()),
                key: 6,
                ..RedirectInfo::default()
            };
            assert_eq!(ifs(resolve_targets(&miss, 1)), None);
            let all = RedirectInfo {
                map: Some(m.clone()),
                flags: BPF_F_BROADCAST,
                ..RedirectInfo::default()
            };
            assert_eq!(ifs(resolve_targets(&all, 1)), Some(vec![7, 1]));
            let others = RedirectInfo {
                map: Some(m.clone()),
                flags: BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
                ..RedirectInfo::default()
            };
            assert_eq!(ifs(resolve_targets(&others, 1)), Some(vec![7]));
        }
    }

    #[test]
    fn redirect_through_other_maps_fails() {
        let m = create(&MapAttr {
            map_type: map_type::ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 8,
            ..MapAttr::default()
        })
        .unwrap();
        let r = RedirectInfo {
            map: Some(m),
            key: 0,
            ..RedirectInfo::default()
        };
        assert_eq!(ifs(resolve_targets(&r, 1)), None);
    }

    #[test]
    fn counters_snapshot() {
        let c = QueueCounters::default();
        inc(&c.rx, 3);
        inc(&c.drop, 2);
        inc(&c.exceptions, 1);
        let s = c.snapshot(4);
        assert_eq!(
            (s.queue, s.rx_packets, s.drop, s.exceptions, s.pass),
            (4, 3, 2, 1, 0)
        );
    }
}
