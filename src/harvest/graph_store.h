// graph.sqlite: the code graph on disk, for other tools to query (schema in docs/harvest.md).
//
// Written to a temporary file in one transaction and renamed over the destination, so a reader never
// sees a half-written database. The schema version is in meta('schema_version').
//
// Usage:
//   TL_TRY(tl::harvest::write_graph_sqlite(graph, "out/graph.sqlite"));
#pragma once

#include <string>

#include "core/status.h"
#include "harvest/code_graph.h"

namespace tl::harvest {

inline constexpr int kGraphSchemaVersion = 1;

Status write_graph_sqlite(const CodeGraph& graph, const std::string& path);

}  // namespace tl::harvest
