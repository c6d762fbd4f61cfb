// Placeholder until the module lands.
namespace tl::io_detail { int placeholder = 0; }
