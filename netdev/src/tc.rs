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

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// `ETH_P_ALL`, in the network byte order `tcm_info` wants.
const ETH_P_ALL_BE: u16 = 0x0003u16.to_be();

/// Installs `clsact` on `dev` and a filter on its ingress redirecting every frame to
/// the ingress of `target` (both ifindexes of the calling thread's namespace).
pub fn redirect_ingress(dev: u32, target: u32) -> io::Result<()> {
    let sock = open()?;
    let mut qdisc = TcMessage::with_index(dev as i32);
    qdisc.header.parent = TcHandle::CLSACT;
    qdisc.header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    qdisc.attributes.push(TcAttribute::Kind("clsact".into()));
    request(&sock, RouteNetlinkMessage::NewQueueDiscipline(qdisc))?;

    let mut filter = TcMessage::with_index(dev as i32);
    filter.header.parent = TcHandle {
        major: 0xffff,
        minor: TcHandle::MIN_INGRESS,
    };
    // Priority 1, every protocol.
    filter.header.info = (1 << 16) | ETH_P_ALL_BE as u32;
    let mut key = TcU32Key::default();
    key.mask = 0;
    key.val = 0;
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![key];
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
    request(&sock, RouteNetlinkMessage::NewTrafficFilter(filter))
}

fn open() -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    Ok(sock)
}

/// Sends one create request and waits for its acknowledgement.
fn request(sock: &Socket, msg: RouteNetlinkMessage) -> io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    sock.send(&buf, 0)?;
    let mut reply = vec![0u8; 8192];
    let n = sock.recv(&mut &mut reply[..], 0)?;
    let answer = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[..n])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    match answer.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(_) => Err(e.to_io()),
        },
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected rtnetlink answer: {other:?}"),
        )),
    }
}
