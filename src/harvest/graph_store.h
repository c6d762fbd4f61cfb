// graph.sqlite: the code graph on disk, for other tools to query (schema in docs/harvest.md).
//
// Written to a temporary file in one transaction and renamed over the destination, so a reader never
// sees a half-written database. The schema version is in meta('schema_version').
//
// Usage:
//   TL_TRY(tl::harvest::write_graph_sqlite(graph, "out/graph.sqlite"));
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "harvest/code_graph.h"
#include "harvest/git_history.h"

namespace tl::harvest {

// 2: adds the `history` table (function before/after pairs from git, see git_history.h).
inline constexpr int kGraphSchemaVersion = 2;

// `history` rows are linked to the HEAD graph by file + qualified name (node_id NULL when the function
// no longer exists there).
Status write_graph_sqlite(const CodeGraph& graph, const std::string& path,
                          const std::vector<FunctionChange>& history = {});

}  // namespace tl::harvest
