// Placeholder until the module lands.
namespace tl::tensor_detail { int placeholder = 0; }
