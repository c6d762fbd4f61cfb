# unsloth training script exported by tuneloop from the unified job spec.
# Run on a CUDA machine with: pip install unsloth trl datasets
from unsloth import FastLanguageModel
from datasets import load_dataset
from trl import DPOConfig, DPOTrainer

BASE_MODEL = "models/qwen2.5-0.5b-instruct"
TRAIN_FILE = "data/prefs.jsonl"
VALIDATION_FILE = None
OUTPUT_DIR = "runs/dpo_full"
MAX_SEQ_LEN = 2048

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name=BASE_MODEL, max_seq_length=MAX_SEQ_LEN, load_in_4bit=False, full_finetuning=True)

files = {"train": TRAIN_FILE}
if VALIDATION_FILE:
    files["validation"] = VALIDATION_FILE
data = load_dataset("json", data_files=files)

args = DPOConfig(
    output_dir=OUTPUT_DIR, num_train_epochs=1, per_device_train_batch_size=2,
    gradient_accumulation_steps=8, learning_rate=5e-07, lr_scheduler_type="cosine",
    warmup_ratio=0.03, weight_decay=0, max_grad_norm=1, seed=42,
    save_steps=100, save_total_limit=3, logging_steps=1, bf16=True,
    beta=0.1, loss_type="sigmoid", max_length=MAX_SEQ_LEN)
eval_data = data["validation"] if VALIDATION_FILE else None
trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=data["train"], eval_dataset=eval_data,
                     processing_class=tokenizer)
trainer.train()
model.save_pretrained(OUTPUT_DIR)
tokenizer.save_pretrained(OUTPUT_DIR)
