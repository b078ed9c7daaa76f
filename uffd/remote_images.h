// lazy-pages --page-server: the page stores live on a page server. Their indexes are fetched
// up front, and the chunks the restore itself writes (the pages that are not lazy) are copied
// into a local partial store, so that `restore --lazy-pages` runs as it does on local images.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "images/page_server_client.h"
#include "images/page_store.h"

namespace lz {

struct RemoteImages {
  std::map<pid_t, std::unique_ptr<img::PageStoreReader>> stores;  // index only: no fd
  std::vector<std::string> partial_files;  // local partial stores made here, removed at the end
};

/// For every task of the dump in `dir` that has memory: its store's index from `client`, and a
/// local partial store with its eager chunks unless `dir` already holds the whole store.
[[nodiscard]] Result<RemoteImages> FetchRemoteImages(PageServerClient& client,
                                                     const std::string& dir);

}  // namespace lz
