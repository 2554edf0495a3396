"""The words of every figure and printed summary, per language: one small table each.

Plots, `summary.txt`, `report.md`, the dataset card and the explain pictures take their
labels from here (`text(key, lang, **values)`), so a Portuguese notebook or `--lang pt-BR`
run shows no English word where its results are. A third language is one more table
with the same keys (a test checks every table has every key). No I/O at import.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

DEFAULT_LANG = "en"

EN: dict[str, str] = {
    # curves
    "loss": "loss", "accuracy": "accuracy", "Loss": "Loss", "Accuracy": "Accuracy", "epoch": "epoch",
    "train": "train", "validation": "validation", "best_restored": "best (restored)",
    # confusion matrix and mistakes
    "predicted": "predicted", "true": "true", "confusion_title": "Confusion matrix (test set)",
    "log_count": "log(1 + count)", "no_mistakes": "no mistakes on this split",
    "mistake": "true {true}\npred {pred} ({confidence:.0%})",
    "mistakes_title": "Most confident mistakes ({shown} of {total} shown)",
    "samples_title": "{per_class} random examples per class",
    # explain
    "filters_title": "First conv layer: {count} filters of {height}x{width} pixels",
    "maps_title": "{name}: {shown} of {total} maps, {height}x{width}",
    "saliency_cell": "true {true}\npred {pred} {confidence:.0%}{mark}",
    "wrong": "wrong", "saliency_title": "Saliency for the predicted class (bright = pixels that move its score most)",
    "input_seen": "input as the model sees it\n(28x28, white ink on black)", "probability": "probability",
    "prediction": "prediction: {pred} ({confidence:.1%})",
    "saliency_for": "saliency for {pred!r}\n(bright = most influential pixels)",
    "maps_of": "feature maps of {name}: {shown} of {total}, {height}x{width} each",
    "no_conv": "this model has no convolutional layers, so it has no filters or feature maps to show",
    "test_image_title": "{dataset} test image {index} (true class {true})",
    # preprocessing steps (preprocess.STEP_NAMES)
    "step_decoded": "decoded", "step_gray": "grayscale", "step_polarity": "white on black",
    "step_contrast": "contrast", "step_background": "background removed", "step_crop": "cropped",
    "step_thickened": "strokes", "step_fit": "fit 20 px", "step_centred": "centred 28x28",
    # summaries (summary.txt, CLI, notebooks)
    "results_epochs": "epochs run {epochs}, best epoch {best} (val loss {val_loss:.4f}, val accuracy {val_acc}), "
                      "{seconds:.0f} s training, {per_epoch:.1f} s/epoch",
    "results_accuracy": "test accuracy   {accuracy}  ({errors} errors in {images} images)",
    "results_loss": "test loss       {loss:.4f}",
    "results_macro": "macro    precision {p:.4f}  recall {r:.4f}  F1 {f:.4f}",
    "results_weighted": "weighted precision {p:.4f}  recall {r:.4f}  F1 {f:.4f}",
    "summary_before": "== Model before training ==", "summary_after": "== After training ==",
    # dataset card
    "card_header": "{name}: {classes} classes, from {source}",
    "card_split": "{split}: {images:,} images, pixel mean {mean:.2f} std {std:.2f} (0..255)",
    "class": "class", "split_train": "train", "split_test": "test",
    # report.md
    "report_title": "Run report: {model} on {dataset}", "model": "model",
    "report_lead": "Folder `{folder}`. Test accuracy **{accuracy}** ({errors} of {images} test images wrong). "
                   "The test set was used once, after training; the best epoch was chosen on the validation split.",
    "test_metrics": "Test metrics", "metric": "metric", "macro": "macro", "weighted": "weighted",
    "precision": "precision", "recall": "recall", "f1": "F1", "support": "support",
    "accuracy_loss": "Accuracy {accuracy:.4f}, log loss {loss:.4f}.", "training": "Training",
    "images_per_s": "training images/s (median epoch): {value}",
    "reload_check": "saved model reloaded and checked: max |difference| in test probabilities {diff:.1e}",
    "curves_alt": "loss and accuracy curves",
    "curves_hint": "Validation loss rising while training loss falls means overfitting; both still falling "
                   "at the end means more epochs would help.",
    "val_loss": "val loss", "val_accuracy": "val accuracy", "lr": "lr", "seconds": "seconds",
    "per_class": "Per class", "confusion_alt": "confusion matrix", "mistakes_alt": "most confident mistakes",
    "full_report": "Full text report: [{file}]({file}).", "configuration": "Configuration",
    "setting": "setting", "value": "value", "data": "Data",
    "data_lead": "Read from `{source}`: {train} training, {val} validation, {test} test images.",
    "file": "file", "sha256": "SHA-256 of contents", "environment": "Environment", "version": "version",
    # the tutorial's and the CLI's printed lines
    "quick_mode": "quick mode", "full_run": "full run", "value_range": "range: {low} to {high}",
    "row_sum": "sum of row 0: {value}", "row_column": "(row, column)", "exit_code": "exit code: {code}",
    "written_to": "written to {path}",
    "default_model_on_clothes": "note: the default model, compact, is made for digits; on Fashion-MNIST it "
                                "scored 91.1% against 92.9% for --model cnn (one seed each); --recipe strong "
                                "or wide go further",
    # why an input was refused ("not a digit"): `inference.acceptance.Reason`
    "refused": "does not look like any of the model's classes: {why}",
    "why_filled": "a filled shape, not pen strokes: ink covers {coverage:.0%} of the 28x28 image, the model's "
                  "classes at most {limit:.0%}",
    "why_stroke": "strokes about {stroke:.0f} px wide in the 28x28 image, wider than the model's classes' usually are",
    "why_core": "shading, not pen strokes: the inside of the ink averages {core:.0%} brightness, where a stroke "
                "is solid",
    "why_no_class": "no class stands out (the closest, {closest}, at {probability:.0%})",
    "why_not_writing": "it does not look like handwriting to the writing scorer (score {score:+.1f}; written "
                       "digits score well above 0)",
    "plain_refused": "not a digit: {why} (the model has no calibrated \"not a digit\" rule; only these plain checks "
                     "apply)",
    "plain_coverage": "ink covers {coverage:.0%} of the image, more than any handwritten digit",
    "plain_stroke": "strokes about {stroke:.0f} px wide in the 28x28 image, wider than any pen's",
    "why_scattered": "scattered dots, not strokes: the ink lies in {pieces} separate pieces, the largest {pixels} "
                     "of its {covered} px",
    "mark_refused": "mark {index} of {count}{more}: {why}", "mark_more": " (and {others} more)",
    "not_accepted": "not accepted",
}

PT_BR: dict[str, str] = {
    "loss": "perda", "accuracy": "acurácia", "Loss": "Perda", "Accuracy": "Acurácia", "epoch": "época",
    "train": "treino", "validation": "validação", "best_restored": "melhor (restaurada)",
    "predicted": "previsto", "true": "verdadeiro", "confusion_title": "Matriz de confusão (conjunto de teste)",
    "log_count": "log(1 + contagem)", "no_mistakes": "nenhum erro neste conjunto",
    "mistake": "real {true}\nprev. {pred} ({confidence:.0%})",
    "mistakes_title": "Erros mais confiantes ({shown} de {total} mostrados)",
    "samples_title": "{per_class} exemplos aleatórios por classe",
    "filters_title": "Primeira camada convolucional: {count} filtros de {height}x{width} pixels",
    "maps_title": "{name}: {shown} de {total} mapas, {height}x{width}",
    "saliency_cell": "real {true}\nprev. {pred} {confidence:.0%}{mark}",
    "wrong": "errado", "saliency_title": "Saliência da classe prevista (claro = pixels que mais mudam sua pontuação)",
    "input_seen": "entrada como o modelo a vê\n(28x28, tinta branca no preto)", "probability": "probabilidade",
    "prediction": "previsão: {pred} ({confidence:.1%})",
    "saliency_for": "saliência de {pred!r}\n(claro = pixels mais influentes)",
    "maps_of": "mapas de ativação de {name}: {shown} de {total}, {height}x{width} cada",
    "no_conv": "este modelo não tem camadas convolucionais, então não há filtros nem mapas de ativação",
    "test_image_title": "{dataset}, imagem de teste {index} (classe real {true})",
    "step_decoded": "decodificada", "step_gray": "tons de cinza", "step_polarity": "branco no preto",
    "step_contrast": "contraste", "step_background": "fundo removido", "step_crop": "recortada",
    "step_thickened": "traços", "step_fit": "cabe em 20 px", "step_centred": "centrada 28x28",
    "results_epochs": "épocas treinadas {epochs}, melhor época {best} (perda de val. {val_loss:.4f}, acurácia de "
                      "val. {val_acc}), {seconds:.0f} s de treino, {per_epoch:.1f} s/época",
    "results_accuracy": "acurácia de teste  {accuracy}  ({errors} erros em {images} imagens)",
    "results_loss": "perda de teste     {loss:.4f}",
    "results_macro": "macro     precisão {p:.4f}  revocação {r:.4f}  F1 {f:.4f}",
    "results_weighted": "ponderada precisão {p:.4f}  revocação {r:.4f}  F1 {f:.4f}",
    "summary_before": "== Modelo antes do treino ==", "summary_after": "== Depois do treino ==",
    "card_header": "{name}: {classes} classes, de {source}",
    "card_split": "{split}: {images:,} imagens, média dos pixels {mean:.2f}, desvio {std:.2f} (0..255)",
    "class": "classe", "split_train": "treino", "split_test": "teste",
    "report_title": "Relatório da execução: {model} em {dataset}", "model": "modelo",
    "report_lead": "Pasta `{folder}`. Acurácia de teste **{accuracy}** ({errors} de {images} imagens de teste "
                   "erradas). O conjunto de teste foi usado uma vez, depois do treino; a melhor época foi "
                   "escolhida no conjunto de validação.",
    "test_metrics": "Métricas de teste", "metric": "métrica", "macro": "macro", "weighted": "ponderada",
    "precision": "precisão", "recall": "revocação", "f1": "F1", "support": "suporte",
    "accuracy_loss": "Acurácia {accuracy:.4f}, perda logarítmica {loss:.4f}.", "training": "Treino",
    "images_per_s": "imagens de treino por segundo (época mediana): {value}",
    "reload_check": "modelo salvo recarregado e conferido: maior |diferença| nas probabilidades de teste {diff:.1e}",
    "curves_alt": "curvas de perda e acurácia",
    "curves_hint": "Perda de validação subindo enquanto a de treino cai indica sobreajuste; as duas ainda "
                   "caindo no fim indicam que mais épocas ajudariam.",
    "val_loss": "perda val.", "val_accuracy": "acurácia val.", "lr": "taxa", "seconds": "segundos",
    "per_class": "Por classe", "confusion_alt": "matriz de confusão", "mistakes_alt": "erros mais confiantes",
    "full_report": "Relatório completo em texto: [{file}]({file}).", "configuration": "Configuração",
    "setting": "opção", "value": "valor", "data": "Dados",
    "data_lead": "Lido de `{source}`: {train} imagens de treino, {val} de validação, {test} de teste.",
    "file": "arquivo", "sha256": "SHA-256 do conteúdo", "environment": "Ambiente", "version": "versão",
    "quick_mode": "modo rápido", "full_run": "execução completa", "value_range": "intervalo: {low} a {high}",
    "row_sum": "soma da linha 0: {value}", "row_column": "(linha, coluna)", "exit_code": "código de saída: {code}",
    "written_to": "escrito em {path}",
    "default_model_on_clothes": "nota: o modelo padrão, compact, foi feito para dígitos; no Fashion-MNIST ele "
                                "marcou 91,1% contra 92,9% do --model cnn (uma semente cada); --recipe strong "
                                "ou wide vão além",
    "refused": "não parece nenhuma das classes do modelo: {why}",
    "why_filled": "uma forma preenchida, não traços de caneta: a tinta cobre {coverage:.0%} da imagem 28x28, as "
                  "classes do modelo no máximo {limit:.0%}",
    "why_stroke": "traços de cerca de {stroke:.0f} px de largura na imagem 28x28, mais largos do que os das classes "
                  "do modelo costumam ser",
    "why_core": "sombreado, não traços de caneta: o interior da tinta tem em média {core:.0%} de brilho, onde um "
                "traço é sólido",
    "why_no_class": "nenhuma classe se destaca (a mais próxima, {closest}, com {probability:.0%})",
    "why_not_writing": "não parece escrita à mão para o avaliador de escrita (nota {score:+.1f}; dígitos escritos "
                       "ficam bem acima de 0)",
    "plain_refused": "não é um dígito: {why} (o modelo não tem uma regra calibrada de \"não é um dígito\"; valem só "
                     "estas verificações simples)",
    "plain_coverage": "a tinta cobre {coverage:.0%} da imagem, mais do que qualquer dígito manuscrito",
    "plain_stroke": "traços de cerca de {stroke:.0f} px de largura na imagem 28x28, mais largos do que os de "
                    "qualquer caneta",
    "why_scattered": "pontos espalhados, não traços: a tinta está em {pieces} pedaços separados, o maior com "
                     "{pixels} de seus {covered} px",
    "mark_refused": "marca {index} de {count}{more}: {why}", "mark_more": " (e mais {others})",
    "not_accepted": "não aceito",
}

# Class names shown in figures and printed lines, per language; a name not listed is shown as it is
# (digits, custom datasets). Fashion-MNIST's are Zalando's English names.
CLASS_NAMES: dict[str, dict[str, str]] = {
    "en": {},
    "pt-BR": {"T-shirt/top": "camiseta/top", "Trouser": "calça", "Pullover": "pulôver", "Dress": "vestido",
              "Coat": "casaco", "Sandal": "sandália", "Shirt": "camisa", "Sneaker": "tênis", "Bag": "bolsa",
              "Ankle boot": "bota"},
}

TABLES: dict[str, dict[str, str]] = {"en": EN, "pt-BR": PT_BR}
LANGUAGES = tuple(TABLES)


def check_lang(lang: str) -> str:
    if lang not in TABLES:
        raise ConfigError(f"unknown language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    return lang


def lang_from_header(header: str | None) -> str:
    """The language an HTTP `Accept-Language` header prefers among ours; English when none matches.

    `pt-BR,pt;q=0.9,en;q=0.8` -> pt-BR; any Portuguese (`pt`, `pt-PT`) reads the pt-BR table,
    the only Portuguese one. Malformed parts are skipped, never an error: browsers send this
    header on their own.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "")[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if not tag or not weight > 0:  # also skips NaN
            continue
        ranked.append((-weight, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag == "*" or tag.split("-")[0] == "en":
            return "en"
        if tag.split("-")[0] == "pt":
            return "pt-BR"
    return DEFAULT_LANG


def class_label(name: str, lang: str = DEFAULT_LANG) -> str:
    """A class name as `lang` shows it (Fashion-MNIST's in Portuguese for pt-BR; others unchanged)."""
    return CLASS_NAMES[check_lang(lang)].get(name, name)


def class_labels(names: Any, lang: str = DEFAULT_LANG) -> list[str]:
    return [class_label(str(name), lang) for name in names]


def text(key: str, lang: str = DEFAULT_LANG, **values: Any) -> str:
    """The `key` label in `lang`, with `values` filled in (str.format)."""
    template = TABLES[check_lang(lang)][key]
    return template.format(**values) if values else template


def step_title(name: str, lang: str = DEFAULT_LANG) -> str:
    """A preprocessing step's short title (`preprocess.STEP_NAMES`), in `lang`; the name if unknown."""
    return TABLES[check_lang(lang)].get(f"step_{name}", name)
