// Placeholder translation unit until the tokenizer lands; removed by the first real source file.
namespace tl::tokenizer_detail { int placeholder = 0; }
