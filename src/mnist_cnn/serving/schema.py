"""The JSON shapes of the HTTP API (`serve`): what requests may hold and what answers hold.

Pydantic models, for validating the JSON image input and for the OpenAPI docs at /docs
(answers are built as dicts by `Prediction.to_dict` and `NumberReading.to_dict`, whose
keys these mirror). Imported only when serving (Pydantic comes with FastAPI, an extra).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from ..inference.preprocess import SIDE

# strict: a pixel is a JSON number; "255" (a string) or true is refused, not coerced.
Pixel = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False, strict=True)]
Row = Annotated[list[Pixel], Field(min_length=SIDE, max_length=SIDE)]


class ImageJSON(BaseModel):
    """A 28x28 image as numbers 0..255 (rows first); either polarity, the usual preprocessing runs."""

    image: Annotated[list[Row], Field(min_length=SIDE, max_length=SIDE)]


class ClassScore(BaseModel):
    class_: str = Field(alias="class")
    index: int
    probability: float


class PredictionJSON(BaseModel):
    source: str
    predicted: str = Field(description="the most probable class name")
    index: int
    probability: float
    top: list[ClassScore] = Field(description="the top-k classes, most probable first")
    probabilities: list[float] = Field(description="one per class, in the order of GET /model's classes")
    image: list[list[int]] = Field(description="the 28x28 image the model saw, 0..255, white ink on black")
    accepted: bool = Field(description="whether the image looks like one of the model's classes at all")
    reason: str | None = Field(description="one line saying why, when not accepted")
    calibrated: bool = Field(description="false: the model has no acceptance.json, so everything is accepted")


class Box(BaseModel):
    x: int
    y: int
    width: int
    height: int


class DigitJSON(BaseModel):
    class_: str = Field(alias="class")
    index: int
    probability: float
    box: Box = Field(description="where the digit is, in the uploaded image's pixels (x, y: top left)")
    accepted: bool
    reason: str | None
    image: list[list[int]] = Field(description="the 28x28 image the model saw for this digit")


class Size(BaseModel):
    width: int
    height: int


class NumberJSON(BaseModel):
    source: str
    number: str = Field(description="the digits' classes, left to right")
    accepted: bool = Field(description="whether every digit looks like one of the model's classes")
    reason: str | None
    calibrated: bool
    size: Size = Field(description="the uploaded image's size: the frame of the boxes")
    digits: list[DigitJSON]
