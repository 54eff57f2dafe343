// The listening unix socket a front-end connects to.
#pragma once

#include <string>

#include "core/unique.h"

namespace vhc {

// Creates, binds (file mode `mode`) and listens on `path`. A stale socket file (nobody
// accepts on it) is replaced; a live one, or a path that is not a socket, is refused.
// Returns the non-blocking listening fd, or an invalid one with `err` set.
UniqueFd listenUnixSocket(const std::string& path, unsigned mode, std::string& err);

// Accepts one pending connection (non-blocking, close-on-exec); invalid if none.
UniqueFd acceptUnixConnection(int listenFd);

}  // namespace vhc
