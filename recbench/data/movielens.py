"""MovieLens (Harper & Konstan, ACM TiiS 2015): the official GroupLens files, and the ordered-sequence
form of SASRec/BERT4Rec preprocessing.

Every rating is an implicit interaction (``min_rating`` 0), users with fewer than 5 ratings are dropped
and items are not filtered: the BERT4Rec(-VAE) preprocessing that gives the published ML-1M statistics
(6,040 users, 3,706 items, 1,000,209 interactions) — SASRec's paper additionally drops items with
fewer than 5 ratings (3,416 items); set ``item_core: 5`` for that variant. Sequences are in rating-time
order, ties in file order (see :mod:`recbench.data.interactions`). Titles and genres are the item text.

Formats:

* ML-100K ``u.data`` ``user<TAB>item<TAB>rating<TAB>timestamp``; ``u.item`` ``|``-separated, latin-1,
  title + 19 genre flags;
* ML-1M ``ratings.dat`` ``UserID::MovieID::Rating::Timestamp``; ``movies.dat``
  ``MovieID::Title::Genres`` (``|``-separated genres), latin-1;
* ML-20M ``ratings.csv`` (header ``userId,movieId,rating,timestamp``) and ``movies.csv``
  (``movieId,title,genres``, quoted titles), UTF-8.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl

from recbench.data.amazon import read_user_sequences
from recbench.data.dataset import SequenceDataset
from recbench.data.download import RemoteFile, ensure_files
from recbench.data.interactions import build_from_log
from recbench.data.parsing import Field, iter_lines, read_delimited, text_table
from recbench.errors import DataError

# u.genre, in flag order.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
HOWTO = "These are the official GroupLens files (https://grouplens.org/datasets/movielens/)."


class _MovieLensRatings:
    """Shared by the three official formats: ratings -> log -> canonical dataset."""

    def __init__(
        self,
        root: str,
        ratings_file: str,
        movies_file: str | None,
        min_rating: float = 0.0,
        user_core: int = 5,
        item_core: int = 0,
        downloads: list[RemoteFile] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.ratings_file = self.root / ratings_file
        self.movies_file = self.root / movies_file if movies_file else None
        self.min_rating, self.user_core, self.item_core = min_rating, user_core, item_core
        self.downloads = list(downloads or [])

    def files(self) -> dict[str, Path]:
        files = {"ratings": self.ratings_file}
        if self.movies_file is not None:
            files["movies"] = self.movies_file
        return ensure_files(self.root.name, self.root, files, self.downloads, HOWTO)

    def read_ratings(self) -> pl.DataFrame:
        raise NotImplementedError

    def read_movies(self, path: Path) -> pd.DataFrame:
        raise NotImplementedError

    def read(self, name: str) -> SequenceDataset:
        ratings = self.read_ratings()
        if self.min_rating > 0:
            ratings = ratings.filter(pl.col("rating") >= self.min_rating)
        log_df = ratings.select(pl.col("user"), pl.col("item"), pl.col("timestamp"))
        text = self.read_movies(self.movies_file) if self.movies_file else None
        meta = {"min_rating": self.min_rating}
        return build_from_log(
            name, log_df, text, self.user_core, self.item_core, meta=meta, text_file=self.movies_file
        )


RATING_FIELDS = [Field("user", pl.Int64), Field("item", pl.Int64), Field("rating", pl.Float64)]


class MovieLens100KSource(_MovieLensRatings):
    """ML-100K: ``u.data`` + ``u.item`` (plain or gzip'd)."""

    def read_ratings(self) -> pl.DataFrame:
        fields = [*RATING_FIELDS, Field("timestamp", pl.Int64)]
        return read_delimited(self.ratings_file, fields, separator="\t", header=False)

    def read_movies(self, path: Path) -> pd.DataFrame:
        rows, lines = [], []
        for lineno, line in iter_lines(path, encoding="latin-1"):
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) != 5 + len(ML100K_GENRES):
                raise DataError(
                    f"{path}:{lineno}: expected {5 + len(ML100K_GENRES)} '|'-separated fields "
                    f"(id, title, dates, URL, {len(ML100K_GENRES)} genre flags), got {len(parts)}"
                )
            flags = parts[5:]
            if any(f not in ("0", "1") for f in flags):
                raise DataError(f"{path}:{lineno}: field 'genres': flags must be 0 or 1, got {flags}")
            genres = [g for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1"]
            rows.append({"item_id": _movie_id(path, lineno, parts[0]), "title": parts[1], "genres": genres})
            lines.append(lineno)
        return _movie_text(path, rows, lines)


class MovieLens1MSource(_MovieLensRatings):
    """ML-1M (also ML-10M): ``ratings.dat`` + ``movies.dat``, ``::``-separated, latin-1."""

    def read_ratings(self) -> pl.DataFrame:
        fields = [*RATING_FIELDS, Field("timestamp", pl.Int64)]
        return read_delimited(self.ratings_file, fields, separator="::", header=False, encoding="latin-1")

    def read_movies(self, path: Path) -> pd.DataFrame:
        return read_movies_dat(path)


class MovieLens20MSource(_MovieLensRatings):
    """ML-20M (also ML-25M, ml-latest): ``ratings.csv`` + ``movies.csv`` with headers, UTF-8."""

    def read_ratings(self) -> pl.DataFrame:
        fields = [
            Field("userId", pl.Int64),
            Field("movieId", pl.Int64),
            Field("rating", pl.Float64),
            Field("timestamp", pl.Int64),
        ]
        df = read_delimited(self.ratings_file, fields, separator=",", header=True)
        return df.rename({"userId": "user", "movieId": "item"})

    def read_movies(self, path: Path) -> pd.DataFrame:
        df = read_delimited(
            path,
            [Field("movieId", pl.Int64), Field("title"), Field("genres")],
            separator=",",
            header=True,
            quoted=True,
        )
        genres = df.get_column("genres").str.replace("(no genres listed)", "", literal=True)
        return pd.DataFrame(
            {
                "title": df.get_column("title").to_list(),
                "genres": genres.str.split("|").list.join(", ").to_list(),
            },
            index=pd.Index(df.get_column("movieId").cast(pl.String).to_list(), name="item_id"),
        )


class MovieLensSequenceSource:
    """ML-1M as per-user chronological sequences (``UserID MovieID MovieID ...``, original GroupLens ids,
    the SASRec/BERT4Rec preprocessed form) + ``movies.dat`` for titles and genres. No timestamps."""

    HOWTO = (
        "This is ML-1M as ordered per-user sequences (one line per user, original ids). With internet, the "
        "official GroupLens zip gives the same data and is fetched (checksum-verified) by one command: "
        "python -m recbench.run data=ml_1m_raw"
    )

    def __init__(self, root: str, sequence_file: str, movies_file: str | None = None) -> None:
        self.root = Path(root).expanduser()
        self.sequence_file = self.root / sequence_file
        self.movies_file = self.root / movies_file if movies_file else None

    def files(self) -> dict[str, Path]:
        files = {"sequences": self.sequence_file}
        if self.movies_file is not None:
            files["movies"] = self.movies_file
        return ensure_files(self.root.name, self.root, files, None, self.HOWTO)

    def read(self, name: str) -> SequenceDataset:
        sequences = list(read_user_sequences(self.sequence_file))
        text = read_movies_dat(self.movies_file) if self.movies_file else None
        return SequenceDataset.from_sequences(name, sequences, item_text=text, text_file=self.movies_file)


def read_movies_dat(path: Path) -> pd.DataFrame:
    """``MovieID::Title::Genres`` (latin-1) -> ``movie id -> title, genres``."""
    rows, lines = [], []
    for lineno, line in iter_lines(path, encoding="latin-1"):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 3:
            raise DataError(f"{path}:{lineno}: expected 'MovieID::Title::Genres', got {len(parts)} field(s)")
        genres = [g for g in parts[2].split("|") if g and g != "(no genres listed)"]
        rows.append({"item_id": _movie_id(path, lineno, parts[0]), "title": parts[1], "genres": genres})
        lines.append(lineno)
    return _movie_text(path, rows, lines)


def _movie_id(path: Path, lineno: int, value: str) -> str:
    if not value.strip().isdigit():
        raise DataError(f"{path}:{lineno}: field 'movie_id': expected an integer, got {value!r}")
    return str(int(value))


def _movie_text(path: Path, rows: list[dict], lines: list[int]) -> pd.DataFrame:
    df = text_table(path, rows, lines, ["title", "genres"])
    df["genres"] = df["genres"].map(", ".join)
    return df
