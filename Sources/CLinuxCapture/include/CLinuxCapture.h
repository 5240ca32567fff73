// Linux AF_PACKET receive ring (TPACKET_V3) for PacketWire's LiveCapture. The kernel's structs
// and macros stay in C; Swift sees a small, documented surface.
#ifndef CLINUX_CAPTURE_H
#define CLINUX_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fd;
    void *map;
    size_t map_length;
    unsigned block_size;
    unsigned block_count;
    int interface_index;  // 0 for "any"
    unsigned link_type;   // NETISR_LINK_*: what the frames start with
} netisr_ring;

/// Link types (LINKTYPE_* values) of a ring's frames. Cooked rings are SOCK_DGRAM: frames start
/// at the network header, and netisr_frame describes the link layer.
enum { NETISR_LINK_ETHERNET = 1, NETISR_LINK_RAW = 101, NETISR_LINK_COOKED = 276 };

typedef struct {
    const unsigned char *data;  // the frame from its link-layer header
    uint32_t captured_length;
    uint32_t original_length;
    uint64_t timestamp_ns;
    uint16_t vlan_tci;
    uint16_t vlan_tpid;
    int vlan_valid;             // the kernel stripped a tag into vlan_tci/vlan_tpid
    int outgoing;               // sent by this host (PACKET_OUTGOING)
    // The link layer as the kernel describes it (sockaddr_ll), for cooked frames' headers.
    uint16_t protocol;          // EtherType, host order
    uint16_t hardware_type;     // ARPHRD_*
    uint8_t packet_type;        // PACKET_HOST, _BROADCAST, _MULTICAST, _OTHERHOST, _OUTGOING
    uint8_t address_length;
    uint8_t address[8];
    int interface_index;
} netisr_frame;

/// Opens an AF_PACKET socket for `interface` ("any": every interface) with a TPACKET_V3 ring of
/// `block_count` blocks of `block_size` bytes, blocks retired after `retire_ms`. It receives
/// nothing until `netisr_ring_bind` (attach a filter first). Returns 0, or an errno value with a
/// message in `error`.
int netisr_ring_open(netisr_ring *ring, const char *interface, unsigned block_size, unsigned block_count,
                     unsigned retire_ms, char *error, size_t error_length);

/// Binds the socket to its interface (all protocols), in promiscuous mode if asked: frames start
/// to arrive. Returns 0 or errno.
int netisr_ring_bind(netisr_ring *ring, int promiscuous);

/// Waits up to `timeout_ms` for block `index` to belong to user space; returns its address or NULL.
void *netisr_ring_block(netisr_ring *ring, unsigned index, int timeout_ms);

/// The number of packets in a block, and its first packet.
unsigned netisr_block_packet_count(void *block);
void *netisr_block_first_packet(void *block);

/// Reads one packet's description; returns the next packet in the block.
void *netisr_packet_read(void *packet, netisr_frame *frame);

/// Gives a block back to the kernel.
void netisr_ring_release(void *block);

/// Packets the kernel received and dropped since the last call (PACKET_STATISTICS). Returns 0 or errno.
int netisr_ring_statistics(netisr_ring *ring, uint64_t *packets, uint64_t *drops);

/// Attaches a classic BPF program (`count` instructions of 8 bytes). Returns 0 or errno.
int netisr_ring_attach_filter(netisr_ring *ring, const void *instructions, unsigned count);

/// Compiles a filter in tcpdump's syntax for `link_type` frames with libpcap, loaded at run time
/// (no build dependency). On success returns 0 and a malloc'd program of `*count` 8-byte
/// instructions in `*instructions` (free it); otherwise -1 and a message in `error`.
int netisr_compile_filter(const char *expression, int link_type, int snap_length, void **instructions,
                          unsigned *count, char *error, size_t error_length);

/// Joins fanout group `*group` in hash mode (the kernel spreads flows over the group's sockets by
/// its flow hash, the same for both directions); with `create` nonzero it creates a group with an
/// unused id instead and stores that id in `*group` (the kernel may choose 0, a valid id, so 0 cannot
/// mean "create"). The socket must be bound. Returns 0 or errno.
int netisr_ring_join_fanout(netisr_ring *ring, unsigned *group, int create);

/// Moves the calling thread into the network namespace at `path` (/var/run/netns/NAME). Returns 0 or errno.
int netisr_enter_network_namespace(const char *path);

/// Unmaps and closes.
void netisr_ring_close(netisr_ring *ring);

#endif
