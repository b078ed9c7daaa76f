// Asks the kernel, on route netlink socket `s`, for its network links (a dump request carrying
// sequence number `seq`): an answer a workload reads, or leaves queued.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

static inline int AskLinks(int s, unsigned seq) {
  struct {
    struct nlmsghdr h;
    struct rtgenmsg g;
  } req = {{.nlmsg_len = sizeof req,
            .nlmsg_type = RTM_GETLINK,
            .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
            .nlmsg_seq = seq},
           {.rtgen_family = AF_UNSPEC}};
  return send(s, &req, sizeof req, 0) == (ssize_t)sizeof req ? 0 : -1;
}
