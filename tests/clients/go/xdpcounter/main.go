// xdpcounter: a cilium/ebpf (Go) loader for examples/xdp-counter/xdp_counter.bpf.c.
//
// It loads the object with ebpf.LoadCollectionSpec + ebpf.NewCollection, attaches
// `xdp_counter` to an interface with a bpf_link (link.AttachXDP) or with rtnetlink
// (netlink.LinkSetXdpFdWithFlags), pins the `counters` map, reads the counters and the
// `.bss` global `total_packets`, then detaches and unpins. Every step prints one line;
// ids are printed as comparisons (they differ between kernels), tags as they are.
//
// It is built in GOPATH mode against Debian's golang-github-cilium-ebpf-dev (0.9.1) and
// golang-github-vishvananda-netlink-dev, statically (CGO_ENABLED=0), and run unmodified
// on the kernel and under bpftime-run by tests/tests/go_loader.rs.
//
// Usage: xdpcounter -obj xdp_counter.bpf.o -iface veth0 [-attach link|netlink]
//
//	[-mode generic|native|default] [-pin /sys/fs/bpf/NAME] [-seconds N | -stdin]
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

var slotNames = []string{"other", "arp", "icmp", "tcp", "udp", "icmpv6"}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "xdpcounter: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	objPath := flag.String("obj", "", "BPF object file (xdp_counter.bpf.o)")
	iface := flag.String("iface", "", "interface to attach to")
	attach := flag.String("attach", "link", "attach with a bpf_link (link) or rtnetlink (netlink)")
	mode := flag.String("mode", "generic", "XDP mode: generic, native or default")
	pin := flag.String("pin", "/sys/fs/bpf/xdpc_counters", "where to pin the counters map")
	seconds := flag.Int("seconds", 3, "count for this many seconds")
	stdin := flag.Bool("stdin", false, "count until stdin reaches EOF (instead of -seconds)")
	flag.Parse()
	if *objPath == "" || *iface == "" {
		die("usage: xdpcounter -obj FILE -iface NAME [-attach link|netlink]")
	}
	if *attach != "link" && *attach != "netlink" {
		die("-attach must be link or netlink, not %q", *attach)
	}
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...interface{}) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}

	if err := rlimit.RemoveMemlock(); err != nil {
		die("removing the memlock rlimit: %v", err)
	}
	ifc, err := net.InterfaceByName(*iface)
	if err != nil {
		die("interface %s: %v", *iface, err)
	}

	spec, err := ebpf.LoadCollectionSpec(*objPath)
	if err != nil {
		die("loading the collection spec: %v", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			die("loading the collection: %+v", verr)
		}
		die("loading the collection: %v", err)
	}
	defer coll.Close()
	prog := coll.Programs["xdp_counter"]
	counters := coll.Maps["counters"]
	bss := coll.Maps[".bss"]
	if prog == nil || counters == nil || bss == nil {
		die("object lacks xdp_counter, counters or .bss (programs %v, maps %v)", coll.Programs, coll.Maps)
	}

	// BPF_OBJ_GET_INFO_BY_FD on the program and the maps.
	pinfo, err := prog.Info()
	if err != nil {
		die("program info: %v", err)
	}
	progID, progIDOk := pinfo.ID()
	mapIDs, _ := pinfo.MapIDs()
	say("prog: name=%s type=%s tag=%s id_ok=%t maps=%d", pinfo.Name, pinfo.Type, pinfo.Tag, progIDOk, len(mapIDs))
	for _, m := range []struct {
		name string
		m    *ebpf.Map
	}{{"counters", counters}, {".bss", bss}} {
		mi, err := m.m.Info()
		if err != nil {
			die("map %s info: %v", m.name, err)
		}
		id, idOk := mi.ID()
		used := false
		for _, x := range mapIDs {
			used = used || x == id
		}
		say("map %s: name=%s type=%s key=%d value=%d max=%d flags=%#x id_ok=%t used_by_prog=%t",
			m.name, mi.Name, mi.Type, mi.KeySize, mi.ValueSize, mi.MaxEntries, mi.Flags, idOk, used)
	}

	var xdpFlags int
	var linkFlags link.XDPAttachFlags
	switch *mode {
	case "generic":
		xdpFlags, linkFlags = nl.XDP_FLAGS_SKB_MODE, link.XDPGenericMode
	case "native":
		xdpFlags, linkFlags = nl.XDP_FLAGS_DRV_MODE, link.XDPDriverMode
	case "default":
	default:
		die("-mode must be generic, native or default, not %q", *mode)
	}

	// Attach.
	var xdpLink link.Link
	var nlLink netlink.Link
	if *attach == "link" {
		xdpLink, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: linkFlags})
		if err != nil {
			die("link.AttachXDP: %v", err)
		}
		say("attached: bpf_link mode=%s", *mode)
		li, err := xdpLink.Info()
		if err != nil {
			die("link info: %v", err)
		}
		xi := li.XDP()
		say("link info: type=%d prog_matches=%t ifindex_matches=%t", li.Type,
			li.Program == progID, xi != nil && int(xi.Ifindex) == ifc.Index)
	} else {
		nlLink, err = netlink.LinkByIndex(ifc.Index)
		if err != nil {
			die("netlink.LinkByIndex: %v", err)
		}
		if err := netlink.LinkSetXdpFdWithFlags(nlLink, prog.FD(), xdpFlags); err != nil {
			die("netlink.LinkSetXdpFdWithFlags: %v", err)
		}
		say("attached: netlink mode=%s", *mode)
	}
	query := func() {
		l, err := netlink.LinkByIndex(ifc.Index)
		if err != nil {
			die("netlink.LinkByIndex: %v", err)
		}
		x := l.Attrs().Xdp
		if x == nil {
			say("netlink query: no IFLA_XDP")
			return
		}
		say("netlink query: attached=%t mode=%d prog_matches=%t", x.Attached, x.AttachMode,
			x.Attached && x.ProgId == uint32(progID))
	}
	query()

	// Pin, and open the pin again: the same map (same id).
	if err := counters.Pin(*pin); err != nil {
		die("pinning counters at %s: %v", *pin, err)
	}
	pinned, err := ebpf.LoadPinnedMap(*pin, nil)
	if err != nil {
		die("opening the pin %s: %v", *pin, err)
	}
	pmi, err := pinned.Info()
	if err != nil {
		die("pinned map info: %v", err)
	}
	cmi, _ := counters.Info()
	pid, _ := pmi.ID()
	cid, _ := cmi.ID()
	say("pinned: %s reopened_same_map=%t", *pin, pid == cid)
	say("ready")

	// Count.
	if *stdin {
		_, _ = io.Copy(io.Discard, os.Stdin)
	} else {
		time.Sleep(time.Duration(*seconds) * time.Second)
	}
	var counts [6]uint64
	line := "counts:"
	for i := range counts {
		if err := counters.Lookup(uint32(i), &counts[i]); err != nil {
			die("counters lookup %d: %v", i, err)
		}
		line += fmt.Sprintf(" %s=%d", slotNames[i], counts[i])
	}
	// cilium/ebpf 0.9 exposes .bss as a one-element ARRAY whose value is the section.
	bssVal := make([]byte, 8)
	if err := bss.Lookup(uint32(0), &bssVal); err != nil {
		die(".bss lookup: %v", err)
	}
	var total uint64
	for i := 7; i >= 0; i-- {
		total = total<<8 | uint64(bssVal[i])
	}
	say("%s total=%d", line, total)
	var viaPin uint64
	if err := pinned.Lookup(uint32(2), &viaPin); err != nil {
		die("pinned lookup: %v", err)
	}
	var again uint64
	_ = counters.Lookup(uint32(2), &again)
	say("pinned map agrees: %t", viaPin == again)
	var key uint32
	n := 0
	iter := pinned.Iterate()
	for iter.Next(&key, &again) {
		n++
	}
	if err := iter.Err(); err != nil {
		die("iterating the pinned map: %v", err)
	}
	say("pinned map keys: %d", n)
	pinned.Close()

	// Detach and unpin.
	if xdpLink != nil {
		if err := xdpLink.Close(); err != nil {
			die("closing the link: %v", err)
		}
	} else {
		if err := netlink.LinkSetXdpFdWithFlags(nlLink, -1, xdpFlags); err != nil {
			die("netlink detach: %v", err)
		}
	}
	say("detached")
	query()
	if err := counters.Unpin(); err != nil {
		die("unpinning: %v", err)
	}
	_, err = os.Stat(*pin)
	say("unpinned: gone=%t", errors.Is(err, os.ErrNotExist))
}
