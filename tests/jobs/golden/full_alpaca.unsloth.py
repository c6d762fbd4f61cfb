# unsloth training script exported by tuneloop from the unified job spec.
# Run on a CUDA machine with: pip install unsloth trl datasets
from unsloth import FastLanguageModel
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

BASE_MODEL = "models/smollm-135m"
TRAIN_FILE = "data/alpaca.jsonl"
VALIDATION_FILE = None
OUTPUT_DIR = "runs/full"
MAX_SEQ_LEN = 2048

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=BASE_MODEL, max_seq_length=MAX_SEQ_LEN, load_in_4bit=False, full_finetuning=True)

files = {"train": TRAIN_FILE}
if VALIDATION_FILE:
    files["validation"] = VALIDATION_FILE
data = load_dataset("json", data_files=files)


def to_text(ex):
    messages = [{"role": "user", "content": ex["instruction"] + ("\n\n" + ex["input"] if ex.get("input") else "")},
                {"role": "assistant", "content": ex["output"]}]
    return {"text": tokenizer.apply_chat_template(messages, tokenize=False)}


data = data.map(to_text)

args = SFTConfig(
    output_dir=OUTPUT_DIR, num_train_epochs=3, per_device_train_batch_size=2,
    gradient_accumulation_steps=8, learning_rate=1e-05, lr_scheduler_type="cosine",
    warmup_ratio=0.1, weight_decay=0.01, max_grad_norm=1, seed=42,
    save_steps=100, save_total_limit=3, logging_steps=1, bf16=True,
    dataset_text_field="text", max_seq_length=MAX_SEQ_LEN, packing=True)
# train_on: assistant — wrap with unsloth.chat_templates.train_on_responses_only for your template
eval_data = data["validation"] if VALIDATION_FILE else None
trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=eval_data,
                     processing_class=tokenizer)
trainer.train()
model.save_pretrained(OUTPUT_DIR)
tokenizer.save_pretrained(OUTPUT_DIR)
