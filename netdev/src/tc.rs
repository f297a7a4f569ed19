//! The classic TC redirect the generic-mode reinjection needs, over rtnetlink:
//! a `clsact` qdisc on a device and, on its ingress, a match-all `u32` filter whose
//! `mirred ingress redirect` action hands every frame to another device's receive
//! path.
//!
//! Why mirred and not a BPF `bpf_redirect`: `act_mirred` marks the skb as redirected
//! (`skb_set_redirected`), and the generic XDP hook of the target lets a redirected
//! skb pass without running its program (`netif_receive_generic_xdp`). A frame the
//! data plane passes must not meet the interface's redirect stub again; a BPF
//! redirect (`dev_forward_skb`) leaves no such mark, and a frame coming back from
//! the TAP cannot otherwise be told from one coming from the wire.
//!
//! What mirred does not do: recompute the packet type against the target's address
//! (the TAP's own `eth_type_trans` decided it), so the TAP carries the target's MAC.

use std::io;

use netlink_packet_core::Emitable;
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};

use crate::rtnl::Socket;

const RTM_NEWQDISC: u16 = 36;
const RTM_NEWTFILTER: u16 = 44;
/// `ETH_P_ALL`, in the network byte order `tcm_info` wants.
const ETH_P_ALL_BE: u16 = 0x0003u16.to_be();

/// Installs `clsact` on `dev` and a filter on its ingress redirecting every frame to
/// the ingress of `target` (both ifindexes of the calling thread's namespace).
pub fn redirect_ingress(dev: u32, target: u32) -> io::Result<()> {
    let mut sock = Socket::open()?;
    let mut qdisc = TcMessage::with_index(dev as i32);
    qdisc.header.parent = TcHandle::CLSACT;
    qdisc.header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    qdisc.attributes.push(TcAttribute::Kind("clsact".into()));
    create(&mut sock, RTM_NEWQDISC, &qdisc)?;

    let mut filter = TcMessage::with_index(dev as i32);
    filter.header.parent = TcHandle {
        major: 0xffff,
        minor: TcHandle::MIN_INGRESS,
    };
    // Priority 1, every protocol.
    filter.header.info = (1 << 16) | ETH_P_ALL_BE as u32;
    // One key of mask 0: every frame matches.
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![TcU32Key::default()];
    let mut mirror = TcMirror::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::IngressRedir;
    mirror.ifindex = target;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".into()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    filter.attributes = vec![
        TcAttribute::Kind("u32".into()),
        TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(sel)),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]),
    ];
    create(&mut sock, RTM_NEWTFILTER, &filter)
}

/// One create request of `msg`, acknowledged (the kernel's errno otherwise).
fn create(sock: &mut Socket, ty: u16, msg: &TcMessage) -> io::Result<()> {
    let mut body = vec![0u8; msg.buffer_len()];
    msg.emit(&mut body);
    sock.create(ty, &body).map_err(io::Error::from_raw_os_error)
}
