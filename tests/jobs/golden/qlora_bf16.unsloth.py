# unsloth training script exported by tuneloop from the unified job spec.
# Run on a CUDA machine with: pip install unsloth trl datasets
from unsloth import FastLanguageModel
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

BASE_MODEL = "models/llama-3.2-1b"
TRAIN_FILE = "data/sharegpt_train.jsonl"
VALIDATION_FILE = "data/sharegpt_val.jsonl"
OUTPUT_DIR = "runs/qlora"
MAX_SEQ_LEN = 4096

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=BASE_MODEL, max_seq_length=MAX_SEQ_LEN, load_in_4bit=True, full_finetuning=False)
model = FastLanguageModel.get_peft_model(
    model, r=16, lora_alpha=16, lora_dropout=0, use_rslora=True,
    target_modules=["q_proj", "v_proj"],
    use_gradient_checkpointing="unsloth", random_state=7)

files = {"train": TRAIN_FILE}
if VALIDATION_FILE:
    files["validation"] = VALIDATION_FILE
data = load_dataset("json", data_files=files)


def to_text(ex):
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    messages = [{"role": roles.get(m["from"], m["from"]), "content": m["value"]} for m in ex["conversations"]]
    return {"text": tokenizer.apply_chat_template(messages, tokenize=False)}


data = data.map(to_text)

args = SFTConfig(
    output_dir=OUTPUT_DIR, num_train_epochs=1, per_device_train_batch_size=4,
    gradient_accumulation_steps=4, learning_rate=0.0002, lr_scheduler_type="linear",
    warmup_ratio=0.03, weight_decay=0, max_grad_norm=1, seed=7,
    save_steps=50, save_total_limit=2, logging_steps=1, bf16=True,
    dataset_text_field="text", max_seq_length=MAX_SEQ_LEN, packing=False)
eval_data = data["validation"] if VALIDATION_FILE else None
trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=eval_data,
                     processing_class=tokenizer)
trainer.train()
model.save_pretrained(OUTPUT_DIR)
tokenizer.save_pretrained(OUTPUT_DIR)
