// Placeholder until the module lands.
namespace tl::model_detail { int placeholder = 0; }
