// See CLinuxCapture.h. Written for this project from the kernel's packet_mmap documentation.
#define _GNU_SOURCE
#include "CLinuxCapture.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

// The link type (LINKTYPE_*) of an interface's frames by its ARPHRD_* type, as libpcap maps them:
// Ethernet (ETHER, LOOPBACK), raw IP (NONE, RAWIP, TUNNEL, TUNNEL6, SIT), else Linux cooked v2.
static unsigned netisr_link_type(int hardware_type) {
    switch (hardware_type) {
    case 1: case 772: return NETISR_LINK_ETHERNET;
    case 0xFFFE: case 519: case 768: case 769: case 776: return NETISR_LINK_RAW;
    default: return NETISR_LINK_COOKED;
    }
}

int netisr_ring_open(netisr_ring *ring, const char *interface, unsigned block_size, unsigned block_count,
                     unsigned retire_ms, char *error, size_t error_length) {
    memset(ring, 0, sizeof(*ring));
    ring->fd = -1;
    int hardware_type = -1;  // unknown, or "any"
    int any = strcmp(interface, "any") == 0;
    if (!any) {
        unsigned index = if_nametoindex(interface);
        if (index == 0) {
            int saved = errno;
            snprintf(error, error_length, "no interface named %s", interface);
            return saved ? saved : ENODEV;
        }
        ring->interface_index = (int)index;
        int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq request_hardware;
        memset(&request_hardware, 0, sizeof(request_hardware));
        snprintf(request_hardware.ifr_name, sizeof(request_hardware.ifr_name), "%s", interface);
        if (probe >= 0 && ioctl(probe, SIOCGIFHWADDR, &request_hardware) == 0)
            hardware_type = request_hardware.ifr_hwaddr.sa_family;
        if (probe >= 0) close(probe);
    }
    // "any" and link types the parser does not read are captured cooked: the kernel removes the
    // link header and describes it in each frame's sockaddr_ll.
    ring->link_type = any ? NETISR_LINK_COOKED : netisr_link_type(hardware_type);
    // Protocol 0: the socket receives nothing until it is bound (after its filter is attached).
    int fd = socket(AF_PACKET, ring->link_type == NETISR_LINK_COOKED ? SOCK_DGRAM : SOCK_RAW, 0);
    if (fd < 0) {
        int saved = errno;
        snprintf(error, error_length, "cannot open a packet socket: %s%s", strerror(saved),
                 saved == EPERM ? " (needs CAP_NET_RAW: run as root)" : "");
        return saved;
    }
    int version = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0) goto fail_errno;
    struct tpacket_req3 request;
    memset(&request, 0, sizeof(request));
    request.tp_block_size = block_size;
    request.tp_block_nr = block_count;
    request.tp_frame_size = 2048;
    request.tp_frame_nr = (block_size / 2048) * block_count;
    request.tp_retire_blk_tov = retire_ms;
    request.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &request, sizeof(request)) != 0) goto fail_errno;
    size_t length = (size_t)block_size * block_count;
    void *map = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, 0);
    if (map == MAP_FAILED) map = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) goto fail_errno;
    ring->fd = fd;
    ring->map = map;
    ring->map_length = length;
    ring->block_size = block_size;
    ring->block_count = block_count;
    return 0;
fail_errno : {
    int saved = errno;
    snprintf(error, error_length, "cannot set up the receive ring: %s", strerror(saved));
    close(fd);
    return saved;
}
}

int netisr_ring_bind(netisr_ring *ring, int promiscuous) {
    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = ring->interface_index;
    if (bind(ring->fd, (struct sockaddr *)&address, sizeof(address)) != 0) return errno;
    if (promiscuous) {
        struct packet_mreq membership;
        memset(&membership, 0, sizeof(membership));
        membership.mr_ifindex = ring->interface_index;
        membership.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(ring->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof(membership)) != 0)
            return errno;
    }
    return 0;
}

void *netisr_ring_block(netisr_ring *ring, unsigned index, int timeout_ms) {
    struct tpacket_block_desc *block =
        (struct tpacket_block_desc *)((char *)ring->map + (size_t)index * ring->block_size);
    if (__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) return block;
    struct pollfd descriptor = {.fd = ring->fd, .events = POLLIN | POLLERR};
    int ready = poll(&descriptor, 1, timeout_ms);
    if (__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) return block;
    // The kernel reports the socket readable while the block it filled last is still user
    // space's: true when the caller holds that block (zero-copy), so poll returns at once. Pause
    // instead of spinning: a pause far shorter than the block timer (10 ms by default).
    if (ready > 0) usleep(500);
    return NULL;
}

unsigned netisr_block_packet_count(void *block) {
    return ((struct tpacket_block_desc *)block)->hdr.bh1.num_pkts;
}

void *netisr_block_first_packet(void *block) {
    struct tpacket_block_desc *descriptor = block;
    return (char *)block + descriptor->hdr.bh1.offset_to_first_pkt;
}

void *netisr_packet_read(void *packet, netisr_frame *frame) {
    struct tpacket3_hdr *header = packet;
    frame->data = (const unsigned char *)packet + header->tp_mac;
    frame->captured_length = header->tp_snaplen;
    frame->original_length = header->tp_len;
    frame->timestamp_ns = (uint64_t)header->tp_sec * 1000000000ull + header->tp_nsec;
    frame->vlan_valid = (header->tp_status & TP_STATUS_VLAN_VALID) != 0;
    frame->vlan_tci = header->hv1.tp_vlan_tci;
    frame->vlan_tpid = (header->tp_status & TP_STATUS_VLAN_TPID_VALID) ? header->hv1.tp_vlan_tpid : 0x8100;
    const struct sockaddr_ll *link =
        (const struct sockaddr_ll *)((const char *)packet + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
    frame->outgoing = link->sll_pkttype == PACKET_OUTGOING;
    frame->protocol = ntohs(link->sll_protocol);
    frame->hardware_type = link->sll_hatype;
    frame->packet_type = link->sll_pkttype;
    frame->address_length = link->sll_halen;
    memcpy(frame->address, link->sll_addr, sizeof(frame->address));
    frame->interface_index = link->sll_ifindex;
    return (char *)packet + header->tp_next_offset;
}

void netisr_ring_release(void *block) {
    struct tpacket_block_desc *descriptor = block;
    __atomic_store_n(&descriptor->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

int netisr_ring_statistics(netisr_ring *ring, uint64_t *packets, uint64_t *drops) {
    struct tpacket_stats_v3 statistics;
    socklen_t length = sizeof(statistics);
    if (getsockopt(ring->fd, SOL_PACKET, PACKET_STATISTICS, &statistics, &length) != 0) return errno;
    *packets = statistics.tp_packets;
    *drops = statistics.tp_drops;
    return 0;
}

int netisr_ring_attach_filter(netisr_ring *ring, const void *instructions, unsigned count) {
    struct sock_fprog program = {.len = (unsigned short)count, .filter = (struct sock_filter *)instructions};
    return setsockopt(ring->fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program)) == 0 ? 0 : errno;
}

// The parts of libpcap's API the filter compiler uses, declared here so libpcap is not needed to build.
struct netisr_bpf_program {
    unsigned int bf_len;
    void *bf_insns;
};
typedef void *(*netisr_pcap_open_dead_fn)(int, int);
typedef int (*netisr_pcap_compile_fn)(void *, struct netisr_bpf_program *, const char *, int, unsigned int);
typedef char *(*netisr_pcap_geterr_fn)(void *);
typedef void (*netisr_pcap_freecode_fn)(struct netisr_bpf_program *);
typedef void (*netisr_pcap_close_fn)(void *);

int netisr_compile_filter(const char *expression, int link_type, int snap_length, void **instructions,
                          unsigned *count, char *error, size_t error_length) {
    static const char *names[] = {"libpcap.so.0.8", "libpcap.so.1", "libpcap.so"};
    void *library = NULL;
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]) && !library; i++) library = dlopen(names[i], RTLD_NOW);
    if (!library) {
        snprintf(error, error_length, "filters need libpcap, which is not installed (Debian: apt-get install libpcap0.8)");
        return -1;
    }
    netisr_pcap_open_dead_fn open_dead = (netisr_pcap_open_dead_fn)dlsym(library, "pcap_open_dead");
    netisr_pcap_compile_fn compile = (netisr_pcap_compile_fn)dlsym(library, "pcap_compile");
    netisr_pcap_geterr_fn geterr = (netisr_pcap_geterr_fn)dlsym(library, "pcap_geterr");
    netisr_pcap_freecode_fn freecode = (netisr_pcap_freecode_fn)dlsym(library, "pcap_freecode");
    netisr_pcap_close_fn close_handle = (netisr_pcap_close_fn)dlsym(library, "pcap_close");
    if (!open_dead || !compile || !geterr || !freecode || !close_handle) {
        snprintf(error, error_length, "the installed libpcap lacks pcap_compile");
        dlclose(library);
        return -1;
    }
    void *handle = open_dead(link_type, snap_length);
    struct netisr_bpf_program program = {0, NULL};
    if (!handle || compile(handle, &program, expression, 1, 0xffffffffu) != 0) {
        snprintf(error, error_length, "bad filter \"%s\": %s", expression, handle ? geterr(handle) : "libpcap failed");
        if (handle) close_handle(handle);
        dlclose(library);
        return -1;
    }
    *count = program.bf_len;
    *instructions = malloc((size_t)program.bf_len * 8);
    if (*instructions) memcpy(*instructions, program.bf_insns, (size_t)program.bf_len * 8);
    freecode(&program);
    close_handle(handle);
    dlclose(library);
    return *instructions ? 0 : -1;
}

int netisr_ring_join_fanout(netisr_ring *ring, unsigned *group, int create) {
    int flags = PACKET_FANOUT_FLAG_DEFRAG | (create ? PACKET_FANOUT_FLAG_UNIQUEID : 0);
    int value = (int)((create ? 0 : *group & 0xffff) | ((PACKET_FANOUT_HASH | flags) << 16));
    if (setsockopt(ring->fd, SOL_PACKET, PACKET_FANOUT, &value, sizeof(value)) != 0) return errno;
    if (create) {
        socklen_t length = sizeof(value);
        if (getsockopt(ring->fd, SOL_PACKET, PACKET_FANOUT, &value, &length) != 0) return errno;
        *group = (unsigned)value & 0xffff;
    }
    return 0;
}

int netisr_enter_network_namespace(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int status = setns(fd, CLONE_NEWNET) == 0 ? 0 : errno;
    close(fd);
    return status;
}

void netisr_ring_close(netisr_ring *ring) {
    if (ring->map) munmap(ring->map, ring->map_length);
    if (ring->fd >= 0) close(ring->fd);
    ring->map = NULL;
    ring->fd = -1;
}
