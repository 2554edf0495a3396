"""The tutorial's one source: code cells (shared) and Markdown cells in English and Portuguese.

`build_tutorials.py` turns this list into `tutorial.ipynb` (en) and `tutorial.pt-BR.ipynb`
(pt). Rules the tests enforce: every code cell is followed by a Markdown cell that says
what happened and why; both notebooks have identical code but for `LANG`. Chapter 10
(Fashion-MNIST) lives in `tutorial_fashion.py`, the exercises closing each chapter in
`tutorial_exercises.py`; `_assemble` puts them in place. Edit these, then rebuild.
"""

from __future__ import annotations


from tutorial_blocks import code, md  # noqa: E402
from tutorial_exercises import EXERCISES  # noqa: E402
from tutorial_fashion import FASHION_CHAPTER  # noqa: E402


CELLS: list[dict[str, str]] = [
    md(
        en="""
# Teaching a convolutional network to read handwritten digits

*Português: [tutorial.pt-BR.ipynb](tutorial.pt-BR.ipynb)*

This notebook walks through the whole life of a small convolutional neural network (CNN)
on MNIST, the 70,000 handwritten digits every deep-learning course starts with: load the
data, prepare it, define the network, train it, read its learning curves, measure it,
save it, use it on *your own* digit, and finally look inside it to see what it learned.

Every step calls the `mnist-cnn` package, the same code the `mnist-cnn` command runs, so
nothing here is a toy copy: what you learn is what the tool does. Each code cell is
followed by an explanation of what just happened and why.

**To run it:** from the repository, `pip install -e '.[dev]'`, then open this notebook
with the notebooks folder as working directory. MNIST is looked for where the package
always looks (`$MNIST_CNN_DATA_DIR`, then `~/.cache/mnist-cnn`, then
`/usr/share/datasets`). A full run trains the default model for up to 8 epochs: one to two
minutes on a 2-core CPU. With `MNIST_CNN_TUTORIAL_QUICK=1` it trains on 3,000 images for
one epoch instead (the automated tests do this): fast, but the numbers are much worse.
""",
        pt="""
# Ensinando uma rede convolucional a ler dígitos escritos à mão

*English: [tutorial.ipynb](tutorial.ipynb)*

Este notebook percorre a vida inteira de uma pequena rede neural convolucional (CNN) no
MNIST, os 70.000 dígitos manuscritos com que todo curso de deep learning começa: carregar
os dados, prepará-los, definir a rede, treiná-la, ler as curvas de aprendizado, medi-la,
salvá-la, usá-la no *seu próprio* dígito e, por fim, olhar dentro dela para ver o que
ela aprendeu.

Cada passo chama o pacote `mnist-cnn`, o mesmo código que o comando `mnist-cnn` executa;
nada aqui é uma cópia de brinquedo: o que você aprende é o que a ferramenta faz. Cada
célula de código é seguida de uma explicação do que aconteceu e por quê.

**Para executar:** no repositório, `pip install -e '.[dev]'` e abra este notebook com a
pasta `notebooks` como diretório de trabalho. O MNIST é procurado onde o pacote sempre
procura (`$MNIST_CNN_DATA_DIR`, depois `~/.cache/mnist-cnn`, depois `/usr/share/datasets`).
Uma execução completa treina o modelo padrão por até 8 épocas: um a dois minutos numa CPU
de 2 núcleos. Com `MNIST_CNN_TUTORIAL_QUICK=1` ele treina com 3.000 imagens por uma única
época (é o que os testes automáticos fazem): rápido, mas os números ficam bem piores.
""",
    ),
    code("""
import dataclasses
import io
import os
from pathlib import Path

import numpy as np
from IPython.display import Image, display
from matplotlib.figure import Figure

import mnist_cnn
from mnist_cnn import load_dataset
from mnist_cnn.core.messages import class_label, text
from mnist_cnn.training.recipes import resolve_config

LANG = "__LANG__"  # this notebook's language: every figure and summary below takes its words from it
QUICK = os.environ.get("MNIST_CNN_TUTORIAL_QUICK") == "1"
# Settings: defaults -> recipe -> config file -> overrides, the same resolver `mnist-cnn train` uses.
config = resolve_config("default", overrides={"lang": LANG, **({"epochs": 1, "train_limit": 3000} if QUICK else {})})


def show(fig: Figure, dpi: int = 72) -> None:
    \"\"\"Draw a matplotlib Figure returned by the package (its plots do not use pyplot).\"\"\"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    display(Image(buffer.getvalue()))


print("mnist-cnn", mnist_cnn.__version__, "|", text("quick_mode" if QUICK else "full_run", LANG))
print(config)
"""),
    md(
        en="""
We imported the package and made the one decision that differs between a full run and the
quick mode: the **training configuration**. `TrainConfig` holds every training setting with
its default (model, epochs, batch size, learning rate, label encoding, validation share,
seed, ...); the printed line shows them all. It is *frozen*: a run's settings cannot change
halfway. `resolve_config` builds it in layers, exactly as `mnist-cnn train` does: the
defaults, then a recipe (`"default"`, `"fast"`, `"strong"`), then a config file, then your
overrides (the CLI's flags). Quick mode only lowers `epochs` and keeps the first 3,000
training images (`train_limit`).

`show` is a small helper: the package draws its pictures with matplotlib's object API
(no global `pyplot` state, safe in a web server), so we turn each figure into a PNG to display it.
""",
        pt="""
Importamos o pacote e tomamos a única decisão que muda entre uma execução completa e o modo
rápido: a **configuração de treino**. `TrainConfig` guarda todas as opções de treino com seus
valores padrão (modelo, épocas, tamanho do lote, taxa de aprendizado, codificação dos
rótulos, fração de validação, semente, ...); a linha impressa mostra todas. Ela é
*congelada* (frozen): as opções de uma execução não mudam no meio do caminho.
`resolve_config` a monta em camadas, exatamente como `mnist-cnn train`: os valores padrão,
depois uma receita (`"default"`, `"fast"`, `"strong"`), depois um arquivo de configuração,
depois as suas substituições (as flags da linha de comando). O modo rápido só reduz
`epochs` e mantém as primeiras 3.000 imagens de treino (`train_limit`).

`show` é um pequeno auxiliar: o pacote desenha suas figuras com a API de objetos do
matplotlib (sem o estado global do `pyplot`, seguro num servidor web), então convertemos
cada figura em PNG para exibi-la.
""",
    ),
    md(
        en="""
## 0. Load and inspect MNIST
""",
        pt="""
## 0. Carregar e inspecionar o MNIST
""",
    ),
    code("""
dataset = load_dataset("mnist")
if QUICK:  # quick mode also scores only the first 1,000 test images
    dataset = dataclasses.replace(dataset, test_images=dataset.test_images[:1000],
                                  test_labels=dataset.test_labels[:1000])

from mnist_cnn.data.cards import card_lines, dataset_card

print(dataset.train_images.shape, dataset.train_images.dtype, dataset.train_labels.shape, "|",
      dataset.test_images.shape, "|", dataset.train_images.min(), "..", dataset.train_images.max())
# The dataset card, as `mnist-cnn data info mnist` prints it (line 0 names this machine's folder).
print("\\n".join(card_lines(dataset_card(dataset), LANG)[1:-4]))
"""),
    md(
        en="""
`load_dataset` found the four MNIST files, **verified** each one against its published
SHA-256 digest (a corrupt or truncated download fails here with a clear message, not later
as a strange accuracy), and parsed them. We get:

- `train_images`: 60,000 images of 28 × 28 pixels, type `uint8` (whole numbers 0 to 255,
  0 = black background, 255 = white ink);
- `train_labels`: one digit 0–9 per image;
- 10,000 test images, kept apart to measure the finished model once.

The classes are roughly balanced (about 6,000 images each), so accuracy is a fair first
measure; on unbalanced data it would hide a neglected class.
""",
        pt="""
`load_dataset` encontrou os quatro arquivos do MNIST, **verificou** cada um contra o seu
resumo SHA-256 publicado (um download corrompido ou incompleto falha aqui, com uma mensagem
clara, e não mais tarde como uma acurácia estranha) e os leu. Recebemos:

- `train_images`: 60.000 imagens de 28 × 28 pixels, tipo `uint8` (inteiros de 0 a 255,
  0 = fundo preto, 255 = tinta branca);
- `train_labels`: um dígito de 0 a 9 por imagem;
- 10.000 imagens de teste, guardadas à parte para medir o modelo pronto uma única vez.

As classes são aproximadamente balanceadas (cerca de 6.000 imagens cada), então a acurácia
é uma primeira medida justa; em dados desbalanceados ela esconderia uma classe esquecida.
""",
    ),
    code("""
fig = Figure(figsize=(10, 1.5))
for i, ax in enumerate(fig.subplots(1, 10)):
    ax.imshow(dataset.train_images[i], cmap="gray")
    ax.set_title(dataset.class_names[dataset.train_labels[i]], fontsize=10)  # the label, no words to translate
    ax.axis("off")
show(fig)
"""),
    md(
        en="""
The first ten training images with their labels. Note what MNIST digits look like: white
ink on black, thick strokes, and every digit **centred** in the 28 × 28 field with a margin
of about 4 pixels. The model will learn from exactly this look; chapter 8 shows why a photo
of your own digit has to be brought into the same look before the model can read it.
""",
        pt="""
As dez primeiras imagens de treino com seus rótulos. Repare como são os dígitos do MNIST:
tinta branca sobre fundo preto, traços grossos e cada dígito **centralizado** no campo de
28 × 28 com uma margem de uns 4 pixels. O modelo vai aprender exatamente com essa aparência;
o capítulo 8 mostra por que a foto de um dígito seu precisa ganhar essa mesma aparência
antes que o modelo consiga lê-la.
""",
    ),
    md(
        en="""
## 1. Prepare the images

### 1.1 Normalise the pixels to [0, 1]
""",
        pt="""
## 1. Preparar as imagens

### 1.1 Normalizar os pixels para [0, 1]
""",
    ),
    code("""
from mnist_cnn.data.prepare import normalize

x_test = normalize(dataset.test_images)
print(dataset.test_images.dtype, dataset.test_images.shape, "->", x_test.dtype, x_test.shape)
print(text("value_range", LANG, low=x_test.min(), high=x_test.max()))
"""),
    md(
        en="""
`normalize` did two things:

1. **Divided by 255** and converted to `float32`, so pixels lie in [0, 1]. Networks learn
   best when inputs are small numbers of similar scale: with 0–255 inputs the first layer's
   outputs would be huge, the gradients too, and training would need a much smaller
   learning rate to stay stable.
2. **Added a channel axis**: (N, 28, 28) → (N, 28, 28, 1). Convolution layers expect images
   as height × width × channels; a colour photo would have 3 channels, a grayscale digit has 1.

We normalised the test images now because we will use them in chapters 6–9; the training
images are normalised the same way inside the training step.
""",
        pt="""
`normalize` fez duas coisas:

1. **Dividiu por 255** e converteu para `float32`, deixando os pixels em [0, 1]. Redes
   aprendem melhor quando as entradas são números pequenos e de escala parecida: com entradas
   de 0 a 255, as saídas da primeira camada seriam enormes, os gradientes também, e o treino
   precisaria de uma taxa de aprendizado bem menor para ficar estável.
2. **Acrescentou um eixo de canal**: (N, 28, 28) → (N, 28, 28, 1). Camadas de convolução
   esperam imagens como altura × largura × canais; uma foto colorida teria 3 canais, um
   dígito em tons de cinza tem 1.

Normalizamos as imagens de teste agora porque vamos usá-las nos capítulos 6 a 9; as de
treino são normalizadas do mesmo jeito dentro da etapa de treino.
""",
    ),
    md(
        en="""
### 1.2 Encode the labels: one-hot, or sparse
""",
        pt="""
### 1.2 Codificar os rótulos: one-hot ou esparsos
""",
    ),
    code("""
from mnist_cnn.data.prepare import encode_labels

some_labels = dataset.train_labels[:4]
print("labels:", some_labels)
print("one-hot:\\n", encode_labels(some_labels, dataset.num_classes, "onehot"))
print("sparse:", encode_labels(some_labels, dataset.num_classes, "sparse"))
"""),
    md(
        en="""
The network's last layer outputs **10 probabilities**, one per digit. To compare that with
the truth, the classic recipe (Keras' `to_categorical`) turns each label into a **one-hot**
vector: ten zeros with a single 1 at the label's position, so a 5 becomes
`[0, 0, 0, 0, 0, 1, 0, 0, 0, 0]`. The loss `categorical_crossentropy` then compares the two
vectors of ten numbers.

**When is one-hot optional?** The loss `sparse_categorical_crossentropy` computes exactly
the same number directly from the integer label (it just picks the predicted probability
of the true class), so with it you can keep the labels as plain integers and save memory.
The package supports both: `TrainConfig(labels="sparse")` or `mnist-cnn train --labels sparse`.
One-hot is still needed for **label smoothing** (`label_smoothing=0.1` replaces the 1 by 0.9
and spreads 0.1 over the other classes), which can only be expressed with full vectors.
""",
        pt="""
A última camada da rede devolve **10 probabilidades**, uma por dígito. Para compará-las com
a resposta certa, a receita clássica (o `to_categorical` do Keras) transforma cada rótulo num
vetor **one-hot**: dez zeros com um único 1 na posição do rótulo; um 5 vira
`[0, 0, 0, 0, 0, 1, 0, 0, 0, 0]`. A perda `categorical_crossentropy` compara então os dois
vetores de dez números.

**Quando o one-hot é opcional?** A perda `sparse_categorical_crossentropy` calcula
exatamente o mesmo número direto do rótulo inteiro (ela só pega a probabilidade prevista para
a classe verdadeira); com ela, os rótulos podem continuar inteiros, economizando memória.
O pacote aceita os dois: `TrainConfig(labels="sparse")` ou `mnist-cnn train --labels sparse`.
O one-hot continua necessário para a **suavização de rótulos** (`label_smoothing=0.1` troca o
1 por 0,9 e espalha 0,1 pelas outras classes), que só pode ser expressa com vetores completos.
""",
    ),
    code("""
from mnist_cnn.data.prepare import prepare_data

prepared = prepare_data(config, dataset)
print(f"{text('train', LANG):>10}:", prepared.x_train.shape, prepared.y_train.shape)
print(f"{text('validation', LANG):>10}:", prepared.x_val.shape, prepared.y_val.shape,
      np.bincount(prepared.y_val.argmax(axis=1)))
"""),
    md(
        en="""
`prepare_data` is what training does with steps 1.1 and 1.2, plus one more: it holds out a
**validation set**, 10% of the training images (`val_fraction`), chosen at random but
*stratified*, i.e. 10% of each class, as the per-class counts show. During training the
network never learns from these images; we use them to watch, epoch by epoch, how well it
does on digits it has not seen, and to pick the best epoch.

Why not use the test set for that? Because every choice made by looking at a set (which
epoch, which learning rate) makes the model a little better *on that set*. The test set
must stay untouched until the very end so that its score is an honest estimate for new
digits. (Keras' `validation_split` would simply take the *last* 10% of the rows, before
shuffling; the package does not use it.)
""",
        pt="""
`prepare_data` é o que o treino faz com os passos 1.1 e 1.2, mais um: separa um **conjunto
de validação**, 10% das imagens de treino (`val_fraction`), escolhidas ao acaso mas de forma
*estratificada*, isto é, 10% de cada classe, como mostram as contagens por classe. Durante o
treino a rede nunca aprende com essas imagens; nós as usamos para acompanhar, época a época,
como ela se sai em dígitos que não viu, e para escolher a melhor época.

Por que não usar o conjunto de teste para isso? Porque toda escolha feita olhando para um
conjunto (qual época, qual taxa de aprendizado) deixa o modelo um pouco melhor *naquele
conjunto*. O teste precisa ficar intocado até o fim para que sua nota seja uma estimativa
honesta para dígitos novos. (O `validation_split` do Keras pegaria simplesmente os *últimos*
10% das linhas, antes de embaralhar; o pacote não o usa.)
""",
    ),
    md(
        en="""
## 2. Define the architecture
""",
        pt="""
## 2. Definir a arquitetura
""",
    ),
    code("""
from mnist_cnn.training.models import MODELS, build_model

print(list(MODELS))
model = build_model(config.model, dataset.num_classes)
print(model.name)
"""),
    md(
        en="""
The package keeps a **registry** of architectures; `build_model` builds one by name. We
built the default, `compact`. Reading it from input to output:

- **Conv2D(24, 4×4, stride 2)**: 24 small filters of 4 × 4 pixels slide over the image, two
  pixels at a time; each one produces a *feature map* that is bright where its pattern (an
  edge, a stroke end, ...) appears. Sharing the same weights at every position is what makes
  a CNN so much smaller than a fully connected network, and indifferent to where in the image
  a stroke is. The stride of 2 halves the image at once (28 → 14): on a CPU, work on the
  full 28 × 28 grid costs more than its share of the arithmetic.
- **BatchNormalization + ReLU**: rescales each map to a stable range (so a high learning
  rate trains fast), then keeps only positive responses.
- A second block with **32 filters** of 3 × 3 combines the first maps into larger shapes
  (loops, corners, crossings) on the 14 × 14 grid.
- **MaxPooling2D**: keeps the strongest response in each 2 × 2 block, halving the size
  (14 → 7): the network becomes tolerant of small shifts and cheaper to run.
- A third block with **64 filters** combines those once more on the 7 × 7 grid, into parts
  of whole digits.
- **Flatten → Dropout(0.4) → Dense(10, softmax)**: the 7 × 7 × 64 maps become one vector of
  3,136 numbers; dropout switches off a random 40% of them at each training step so the
  classifier cannot rely on any single one (it memorises less); the dense layer turns them
  into 10 scores and softmax into 10 probabilities that add up to 1.

The seed notebook's model is also here, as `keras-example` (the keras.io MNIST convnet).
""",
        pt="""
O pacote mantém um **registro** de arquiteturas; `build_model` constrói uma pelo nome.
Construímos a padrão, `compact`. Lendo da entrada para a saída:

- **Conv2D(24, 4×4, passo 2)**: 24 pequenos filtros de 4 × 4 pixels deslizam sobre a imagem,
  de dois em dois pixels; cada um produz um *mapa de características* (feature map) que fica
  claro onde o seu padrão (uma borda, a ponta de um traço, ...) aparece. Usar os mesmos pesos
  em todas as posições é o que torna uma CNN muito menor que uma rede totalmente conectada, e
  indiferente ao lugar da imagem onde o traço está. O passo 2 reduz a imagem pela metade de
  uma vez (28 → 14): numa CPU, trabalhar na grade inteira de 28 × 28 custa mais do que a sua
  parte das contas.
- **BatchNormalization + ReLU**: reescala cada mapa para uma faixa estável (assim uma taxa
  de aprendizado alta treina rápido) e depois mantém só as respostas positivas.
- Um segundo bloco, com **32 filtros** de 3 × 3, combina os primeiros mapas em formas maiores
  (laços, cantos, cruzamentos) na grade 14 × 14.
- **MaxPooling2D**: guarda a resposta mais forte de cada bloco 2 × 2, reduzindo o tamanho
  pela metade (14 → 7): a rede fica tolerante a pequenos deslocamentos e mais barata.
- Um terceiro bloco, com **64 filtros**, combina esses mais uma vez na grade 7 × 7, em partes
  de dígitos inteiros.
- **Flatten → Dropout(0,4) → Dense(10, softmax)**: os mapas 7 × 7 × 64 viram um vetor de
  3.136 números; o dropout desliga 40% deles ao acaso a cada passo de treino, para que o
  classificador não dependa de nenhum em particular (ele decora menos); a camada densa os
  transforma em 10 notas e o softmax em 10 probabilidades que somam 1.

O modelo do notebook original também está aqui, como `keras-example` (a convnet de MNIST do
keras.io).
""",
    ),
    md(
        en="""
### 2.1 The model's summary
""",
        pt="""
### 2.1 O resumo do modelo
""",
    ),
    code("""
from mnist_cnn.training.train import model_summary

print(model_summary(model))
"""),
    md(
        en="""
The summary lists each layer with the **shape of its output** (`None` is the batch size,
unknown until data arrives) and its **number of parameters** (weights to learn). Checking
the counts by hand is a good exercise:

- first conv: 4 × 4 pixels × 1 input channel × 24 filters = **384** (no bias: batch norm's
  own shift makes it redundant);
- its batch norm: 4 numbers per channel × 24 = **96**, of which half (the running mean and
  variance) are not trained by gradient descent: they are the "non-trainable" parameters;
- second conv: 3 × 3 × 24 × 32 = **6,912**; its batch norm 4 × 32 = 128;
- third conv: 3 × 3 × 32 × 64 = **18,432**; its batch norm 4 × 64 = 256;
- the classifier: 3,136 inputs × 10 outputs + 10 biases = **31,370**, the biggest layer.

In total 57,578 numbers, of which 240 (the batch norms' running statistics) are not trained.

Pooling, ReLU, flatten and dropout have no parameters: they only move or select numbers.
""",
        pt="""
O resumo lista cada camada com o **formato da sua saída** (`None` é o tamanho do lote,
desconhecido até os dados chegarem) e o seu **número de parâmetros** (pesos a aprender).
Conferir as contas à mão é um bom exercício:

- primeira convolução: 4 × 4 pixels × 1 canal de entrada × 24 filtros = **384** (sem viés: o
  deslocamento da própria batch norm o torna redundante);
- sua batch norm: 4 números por canal × 24 = **96**, dos quais metade (a média e a variância
  acumuladas) não são treinados por gradiente: são os parâmetros "não treináveis";
- segunda convolução: 3 × 3 × 24 × 32 = **6.912**; sua batch norm 4 × 32 = 128;
- terceira convolução: 3 × 3 × 32 × 64 = **18.432**; sua batch norm 4 × 64 = 256;
- o classificador: 3.136 entradas × 10 saídas + 10 vieses = **31.370**, a maior camada.

No total, 57.578 números, dos quais 240 (as estatísticas acumuladas das batch norms) não são
treinados.

Pooling, ReLU, flatten e dropout não têm parâmetros: só movem ou selecionam números.
""",
    ),
    md(
        en="""
## 3. Compile: loss, optimizer, metrics
""",
        pt="""
## 3. Compilar: perda, otimizador, métricas
""",
    ),
    code("""
from mnist_cnn.training.train import compile_model, learning_rate, steps_per_epoch

steps = steps_per_epoch(config, len(prepared.x_train))
compile_model(model, config, steps)
print(type(model.loss).__name__, "|", type(model.optimizer).__name__, "|", model.get_compile_config()["metrics"])
schedule = learning_rate(config, steps)
total = config.epochs * steps
for step in sorted({0, steps // 2, steps, total // 2, total - 1}):
    print(f"{text('lr', LANG)} @ {step:5d}: {float(schedule(step)):.5f}")
"""),
    md(
        en="""
Compiling tells Keras *how* to learn:

- the **loss** measures how wrong the predictions are: categorical cross-entropy, i.e.
  −log(probability given to the true class). It is near 0 for a confident right answer and
  large for a confident wrong one; training means making it small.
- the **optimizer** decides how to change the weights to lower the loss: **Adam**, gradient
  descent with a per-weight adaptive step size. Its learning rate follows a **schedule**: a
  short warm-up from a small value to the peak (large steps at the very start, on random
  weights, can throw training off), then a cosine decay to zero, so the last epochs make
  small careful steps. The printed values show that curve at a few steps.
- the **metrics** are only reported, never optimised: here accuracy, the share of images
  whose most probable class is the right one.

One training *step* processes one batch of `batch_size` images; an *epoch* is one pass over
all training images (`steps` steps).
""",
        pt="""
Compilar diz ao Keras *como* aprender:

- a **perda** mede o quanto as previsões erram: a entropia cruzada categórica, isto é,
  −log(probabilidade dada à classe verdadeira). Ela é quase 0 para um acerto confiante e
  grande para um erro confiante; treinar é torná-la pequena.
- o **otimizador** decide como mudar os pesos para baixar a perda: **Adam**, uma descida de
  gradiente com passo adaptativo por peso. A taxa de aprendizado segue um **cronograma**: um
  breve aquecimento de um valor pequeno até o pico (passos grandes logo no início, com pesos
  aleatórios, podem desandar o treino) e depois um decaimento em cosseno até zero, para que
  as últimas épocas deem passos pequenos e cuidadosos. Os valores impressos mostram essa
  curva em alguns passos.
- as **métricas** são só relatadas, nunca otimizadas: aqui a acurácia, a fração de imagens
  cuja classe mais provável é a certa.

Um *passo* de treino processa um lote de `batch_size` imagens; uma *época* é uma passagem
por todas as imagens de treino (`steps` passos).
""",
    ),
    md(
        en="""
## 4. Train with a validation set, then test
""",
        pt="""
## 4. Treinar com um conjunto de validação e depois testar
""",
    ),
    code("""
from mnist_cnn.runs.run import Run, default_runs_dir
from mnist_cnn.training.train import train

from mnist_cnn.evaluation.report import results_lines

run_dir = Run.create(default_runs_dir(), config.dataset, config.model).path
result = train(config, dataset, run_dir, verbose=0)  # silent: the summary below says what happened
print(run_dir.name)  # the run folder, under the runs folder
print(sorted(path.name for path in run_dir.iterdir()))
"""),
    md(
        en="""
`train` ran everything we did by hand above (prepare the data, build and compile the model)
and then the training loop itself. We asked it to stay silent (`verbose=0`; the command
line prints one line per epoch); chapter 5.2 reads the same numbers from the run folder: the
**loss** and **accuracy** on the training images and the same two on the **validation**
images, per epoch.

Around the loop it did what a careful person would do:

- after each epoch it saved a checkpoint (`checkpoints/`) and wrote down where training
  stands (`state.json`: the epoch, the epoch with the **lowest validation loss** so far), so
  a run killed at any moment resumes where it was (`mnist-cnn train --resume`); if
  validation loss stopped improving for `patience` epochs it **stopped early**; at the end
  it restored the best weights, not the last ones;
- it wrote every artefact into a **run folder**: the settings (`config.json`), the
  history of each epoch (`history.csv`), the model (`model.keras`), metrics, plots and a
  one-page `report.md`. A run you can come back to, compare and reproduce.

Training used a fresh model; the `model` we compiled in chapter 3 was for looking at only.
""",
        pt="""
`train` executou tudo o que fizemos à mão acima (preparar os dados, construir e compilar o
modelo) e depois o laço de treino em si. Pedimos silêncio (`verbose=0`; a linha de comando
imprime uma linha por época); o capítulo 5.2 lê os mesmos números da pasta da execução: a
**perda** e a **acurácia** nas imagens de treino e as mesmas duas nas imagens de
**validação**, época a época.

Em volta do laço ele fez o que uma pessoa cuidadosa faria:

- após cada época salvou um checkpoint (`checkpoints/`) e anotou onde o treino está
  (`state.json`: a época e a época com a **menor perda de validação** até ali), para que uma
  execução interrompida a qualquer momento continue de onde parou (`mnist-cnn train
  --resume`); se a perda de validação parasse de melhorar por `patience` épocas, ele
  **pararia antes** (early stopping); no fim, restaurou os melhores pesos, não os últimos;
- gravou cada artefato numa **pasta de execução**: as opções (`config.json`), o histórico de
  cada época (`history.csv`), o modelo (`model.keras`), métricas, gráficos e um
  `report.md` de uma página. Uma execução à qual você pode voltar, comparar e reproduzir.

O treino usou um modelo novo; o `model` que compilamos no capítulo 3 era só para olhar.
""",
    ),
    code("""
print("\\n".join(results_lines(result.metrics, LANG)))
"""),
    md(
        en="""
Only now, with the best epoch chosen on validation data, was the model run **once** on the
test set. Test and validation accuracy should be close: both are digits the network never
trained on. A full run of the default model reaches about 99.3% (roughly 7 errors in 1,000
digits); in quick mode, with 3,000 images and one epoch, expect far less.

If the test score were much lower than the validation score, something would be wrong: the
validation set leaking into choices too much, or the test data being different.
""",
        pt="""
Só agora, com a melhor época escolhida nos dados de validação, o modelo foi executado **uma
vez** no conjunto de teste. As acurácias de teste e de validação devem ser próximas: os dois
conjuntos são dígitos com os quais a rede nunca treinou. Uma execução completa do modelo
padrão chega a cerca de 99,3% (mais ou menos 7 erros a cada 1.000 dígitos); no modo rápido, com
3.000 imagens e uma época, espere bem menos.

Se a nota de teste fosse muito menor que a de validação, haveria algo errado: a validação
influenciando demais as escolhas, ou dados de teste diferentes.
""",
    ),
    md(
        en="""
## 5. After training

### 5.1 The summary after training
""",
        pt="""
## 5. Depois do treino

### 5.1 O resumo depois do treino
""",
    ),
    code("""
print(result.summary_after)
trainable = sum(int(np.prod(weight.shape)) for weight in result.model.trainable_weights)
print(f"trainable weights: {trainable:,} | Adam's state, 2 per weight + a step counter: {2 * trainable + 1:,}")
"""),
    md(
        en="""
The summary after training has **the same layers, shapes and parameter counts** as in 2.1:
training never changes a network's structure, only the values of its weights. One new line
appears, *Optimizer params*: Adam keeps two running averages for every trainable weight
(of its gradient and of the gradient's square) plus a step counter, and the last line checks
that arithmetic. That state is saved with the model, so training can resume where it stopped.

What training changed is invisible in a summary: the values of the weights. Chapter 9 looks
at the first layer's weights as pictures.
""",
        pt="""
O resumo depois do treino tem **as mesmas camadas, formatos e contagens de parâmetros** do
2.1: o treino nunca muda a estrutura de uma rede, só os valores dos seus pesos. Aparece uma
linha nova, *Optimizer params*: o Adam guarda duas médias móveis para cada peso treinável
(do gradiente e do quadrado do gradiente) mais um contador de passos, e a última linha
confere essa conta. Esse estado é salvo com o modelo, para que o treino possa continuar de
onde parou.

O que o treino mudou não aparece num resumo: os valores dos pesos. O capítulo 9 olha os pesos
da primeira camada como imagens.
""",
    ),
    md(
        en="""
### 5.2 Learning curves: reading over- and underfitting
""",
        pt="""
### 5.2 Curvas de aprendizado: como ler sobreajuste e subajuste
""",
    ),
    code("""
from mnist_cnn.runs.run import Run

columns = ["epoch", "loss", "val_loss", "accuracy", "val_accuracy"]
print("  ".join(f"{text(c, LANG):>13}" for c in columns))
for row in Run(run_dir).read_history():
    print("  ".join(f"{row[c]:>13.4f}" if c != "epoch" else f"{row[c]:>13d}" for c in columns))
display(Image(filename=run_dir / "curves.png", width=720))
"""),
    md(
        en="""
These are the numbers `train` logged each epoch (`history.csv`) and the plot it drew from
them (`curves.png`): loss on the left, accuracy on the right, training in one colour and
validation in the other, and a dashed line at the epoch whose weights were kept.

How to read them:

- **Underfitting**: both losses are still falling at the last epoch (or both stay high). The
  model has not learned all it could; train longer, or use a bigger model. A quick-mode run
  (one point per curve) is underfit by design.
- **Overfitting**: the training loss keeps falling while the validation loss stops falling
  and **rises**. The network is memorising its training images rather than learning digits.
  The remedies are more data (or augmentation), more regularisation (dropout), or stopping
  at the best validation epoch, which is what early stopping did for us.
- **A good fit**: both curves flatten out close together. Training accuracy slightly below
  validation accuracy is normal here: dropout is active while training and off while
  validating.
""",
        pt="""
Estes são os números que o `train` registrou a cada época (`history.csv`) e o gráfico que
ele desenhou a partir deles (`curves.png`): perda à esquerda, acurácia à direita, treino numa
cor e validação na outra, e uma linha tracejada na época cujos pesos foram mantidos.

Como lê-las:

- **Subajuste (underfitting)**: as duas perdas ainda estão caindo na última época (ou as
  duas continuam altas). O modelo não aprendeu tudo o que podia; treine por mais tempo ou use
  um modelo maior. Uma execução no modo rápido (um ponto por curva) é subajustada de
  propósito.
- **Sobreajuste (overfitting)**: a perda de treino continua caindo enquanto a de validação
  para de cair e **sobe**. A rede está decorando as imagens de treino em vez de aprender
  dígitos. Os remédios são mais dados (ou aumento de dados), mais regularização (dropout), ou
  parar na melhor época de validação, que é o que o early stopping fez por nós.
- **Um bom ajuste**: as duas curvas se achatam próximas uma da outra. Acurácia de treino um
  pouco abaixo da de validação é normal aqui: o dropout está ligado no treino e desligado na
  validação.
""",
    ),
    md(
        en="""
## 6. Predictions on the test set
""",
        pt="""
## 6. Previsões no conjunto de teste
""",
    ),
    code("""
from mnist_cnn.inference.runtimes import predict_probabilities

probabilities = predict_probabilities(result.model, x_test)
predicted = probabilities.argmax(axis=1)
labels = dataset.test_labels.astype(int)
print(probabilities.shape, "|", text("row_sum", LANG, value=probabilities[0].sum().round(4)))
print(f"{'#':>3} {text('true', LANG):>11} {text('predicted', LANG):>11} {text('probability', LANG):>14}")
for i in range(8):
    print(f"{i:>3} {labels[i]:>11} {predicted[i]:>11} {probabilities[i, predicted[i]]:>14.3f}")
"""),
    md(
        en="""
`predict_probabilities` ran the trained model over all test images in large batches and
returned one row of 10 probabilities per image. The **prediction** is the class with the
highest probability (`argmax`), and that probability is the model's **confidence**.

Confidence is not correctness: a network can be very sure and wrong, as chapter 6.1's
picture of mistakes shows. Still, low-confidence predictions are where errors concentrate,
which is useful when a person can double-check the doubtful cases.
""",
        pt="""
`predict_probabilities` executou o modelo treinado sobre todas as imagens de teste em lotes
grandes e devolveu uma linha de 10 probabilidades por imagem. A **previsão** é a classe de
maior probabilidade (`argmax`), e essa probabilidade é a **confiança** do modelo.

Confiança não é acerto: uma rede pode estar muito segura e errada, como mostra a figura de
erros do capítulo 6.1. Ainda assim, os erros se concentram nas previsões de baixa confiança,
o que é útil quando uma pessoa pode revisar os casos duvidosos.
""",
    ),
    md(
        en="""
### 6.1 Accuracy, precision, recall, F1 and the confusion matrix
""",
        pt="""
### 6.1 Acurácia, precisão, revocação, F1 e a matriz de confusão
""",
    ),
    code("""
from mnist_cnn.evaluation.evaluate import compute_metrics

metrics = compute_metrics(labels, probabilities, dataset.class_names)
print(f"{text('accuracy', LANG)} {metrics['accuracy']:.4f}")
header = ["class", "precision", "recall", "f1", "support"]
print("".join(f"{text(h, LANG):>12}" for h in header))
for name, row in metrics["per_class"].items():
    print(f"{name:>12}" + "".join(f"{row[k]:>12.4f}" for k in header[1:4]) + f"{row['support']:>12}")
for average in ("macro", "weighted"):
    print(f"{text(average, LANG):>12}" + "".join(f"{metrics[average][k]:>12.4f}" for k in header[1:4]))
"""),
    md(
        en="""
For each digit, say 7, the report answers three questions:

- **precision**: of the images the model *called* 7, what share really were 7? Low precision
  means false alarms (other digits taken for a 7).
- **recall**: of the images that *really are* 7, what share did the model find? Low recall
  means misses (7s taken for something else).
- **F1**: the harmonic mean of the two, 2·P·R / (P + R), high only when both are high.
- **support**: how many test images of that class there are.

**Accuracy** is the share of all images predicted right. The *macro average* gives every
class the same weight; the *weighted average* weights each class by its support. With
balanced classes, as in MNIST, all of them are close; on unbalanced data, look at the
per-class rows and the macro average, where a neglected small class shows up.
""",
        pt="""
Para cada dígito, digamos o 7, o relatório responde a três perguntas:

- **precisão**: das imagens que o modelo *chamou* de 7, que fração era mesmo 7? Precisão
  baixa significa alarmes falsos (outros dígitos tomados por 7).
- **revocação** (recall): das imagens que *são* 7, que fração o modelo encontrou? Revocação
  baixa significa omissões (7s tomados por outra coisa).
- **F1**: a média harmônica das duas, 2·P·R / (P + R), alta só quando ambas são altas.
- **support**: quantas imagens de teste daquela classe existem.

A **acurácia** é a fração de todas as imagens previstas corretamente. A *média macro* dá o
mesmo peso a cada classe; a *média ponderada* pesa cada classe pelo seu suporte. Com classes
balanceadas, como no MNIST, todas ficam próximas; em dados desbalanceados, olhe as linhas por
classe e a média macro, onde uma classe pequena esquecida aparece.
""",
    ),
    code("""
display(Image(filename=run_dir / "confusion_matrix.png", width=430))
display(Image(filename=run_dir / "misclassified.png", width=560))
"""),
    md(
        en="""
The **confusion matrix** (drawn by `train` from the test predictions) counts, for each true
digit (row), how often each digit was predicted (column). The diagonal holds the correct
answers; every number off the diagonal is a kind of mistake, so you can see *which* digits
get confused: typically 4 ↔ 9, 3 ↔ 5, 7 ↔ 2. The colours use a logarithmic scale so that a
handful of errors stays visible next to about a thousand correct answers.

Below it are the **most confident mistakes**. Many are digits a person would hesitate over
too, and a few MNIST labels are arguably wrong; the rest show what the model has not
learned yet.
""",
        pt="""
A **matriz de confusão** (desenhada pelo `train` a partir das previsões de teste) conta,
para cada dígito verdadeiro (linha), quantas vezes cada dígito foi previsto (coluna). A
diagonal guarda os acertos; cada número fora dela é um tipo de erro, então dá para ver
*quais* dígitos se confundem: tipicamente 4 ↔ 9, 3 ↔ 5, 7 ↔ 2. As cores usam escala
logarítmica para que meia dúzia de erros continue visível ao lado de cerca de mil acertos.

Logo abaixo estão os **erros mais confiantes**. Muitos são dígitos que uma pessoa também
hesitaria em ler, e alguns rótulos do MNIST são discutíveis; o resto mostra o que o modelo
ainda não aprendeu.
""",
    ),
    md(
        en="""
## 7. Save the model to `.keras` and load it back
""",
        pt="""
## 7. Salvar o modelo em `.keras` e carregá-lo de volta
""",
    ),
    code("""
from mnist_cnn.inference.keras_file import load_saved_model

model_path = run_dir / "model.keras"
print(model_path.name, f"({model_path.stat().st_size / 1024:.0f} KiB)")
reloaded = load_saved_model(model_path)
difference = np.abs(predict_probabilities(reloaded, x_test) - probabilities).max()
print("max |p(model.keras) - p(trained)|:", difference)
"""),
    md(
        en="""
`train` already saved the best model as `model.keras`, Keras 3's native format: one zip
file holding the architecture (as JSON), the weights and the optimizer state. (The older
`.h5` format still loads in Keras, but `.keras` is the one to use now.)

`load_saved_model` loads it in Keras' **safe mode**, which refuses files that would run
arbitrary Python code on loading, and turns a wrong path or a broken file into a one-line
error. The reloaded model predicts exactly what the trained one did (the difference is 0 or
float rounding noise); `train` checks this itself right after saving. This file is all you
need to use the model elsewhere: `mnist-cnn evaluate`, `mnist-cnn explain`, or your own code.
""",
        pt="""
O `train` já salvou o melhor modelo como `model.keras`, o formato nativo do Keras 3: um único
arquivo zip com a arquitetura (em JSON), os pesos e o estado do otimizador. (O formato antigo
`.h5` ainda carrega no Keras, mas `.keras` é o que se usa agora.)

`load_saved_model` o carrega no **modo seguro** do Keras, que recusa arquivos que executariam
código Python arbitrário ao carregar, e transforma um caminho errado ou um arquivo quebrado
num erro de uma linha. O modelo recarregado prevê exatamente o mesmo que o treinado (a
diferença é 0 ou ruído de arredondamento); o `train` confere isso sozinho logo depois de
salvar. Esse arquivo é tudo o que você precisa para usar o modelo em outro lugar:
`mnist-cnn evaluate`, `mnist-cnn explain` ou o seu próprio código.
""",
    ),
    md(
        en="""
## 8. Your own digit, step by step

`my_digit.png`, beside this notebook, stands in for a phone photo of a hand-written 7:
dark ink on uneven grey paper, off-centre, far bigger than 28 × 28. Replace it with a photo
of your own digit and run this chapter again.
""",
        pt="""
## 8. O seu próprio dígito, passo a passo

`my_digit.png`, ao lado deste notebook, faz o papel da foto de celular de um 7 escrito à mão:
tinta escura sobre papel cinza irregular, fora do centro, muito maior que 28 × 28. Troque-o
pela foto de um dígito seu e execute este capítulo de novo.
""",
    ),
    code("""
from mnist_cnn.inference.preprocess import model_input, preprocess_steps, read_image_file, to_gray, to_mnist

photo = read_image_file(Path("my_digit.png"))
steps = preprocess_steps(photo)  # MNIST's recipe, keeping the image after every named step
digit = steps[-1].image  # float32 (28, 28): what the model will see
assert np.array_equal(digit, to_mnist(to_gray(photo)))  # the same code, run without keeping the steps
naive = np.asarray(photo.convert("L").resize((28, 28)), dtype=np.float32) / 255  # the tempting shortcut

from mnist_cnn.core.messages import step_title

print(f"photo: {photo.height} x {photo.width}, {photo.mode}")
for number, step in enumerate(steps, start=1):
    height, width = step.image.shape
    print(f"{number}. {step_title(step.name, LANG):20} {height:>4} x {width:<4}")
rows, cols = np.nonzero(digit)
centre = (np.indices(digit.shape) * digit).sum(axis=(1, 2)) / digit.sum()
print("28x28:", np.ptp(rows) + 1, "x", np.ptp(cols) + 1, "|", text("row_column", LANG) + ":", centre.round(1))
"""),
    md(
        en="""
`preprocess_steps` runs exactly the code that `preprocess` runs (and with it `mnist-cnn
predict` and the web page), but keeps a copy of the image after each **named step**; the
list of names is `STEP_NAMES["digit"]` in `mnist_cnn.preprocess`. The last step is the
model's input: the `assert` checks that it is identical, pixel for pixel, to what `to_mnist`
gives when called directly on the grayscale photo.

The printout lists every step with its size in pixels (rows × columns) and the package's
one-line description. The size shrinks from the photo's to the 28 × 28 that MNIST uses, and
the last line checks the result: the ink fits a box whose longer side is 20 pixels, with its
centre of mass at about (14, 14).
""",
        pt="""
`preprocess_steps` executa exatamente o código que o `preprocess` executa (e com ele o
`mnist-cnn predict` e a página web), mas guarda uma cópia da imagem depois de cada **passo
nomeado**; a lista de nomes é `STEP_NAMES["digit"]`, em `mnist_cnn.preprocess`. O último passo
é a entrada do modelo: o `assert` confere que ela é idêntica, pixel a pixel, ao que o
`to_mnist` devolve quando chamado diretamente sobre a foto em tons de cinza.

A saída lista cada passo com o seu tamanho em pixels (linhas × colunas) e a descrição de uma
linha do pacote (em inglês). O tamanho encolhe do da foto até os 28 × 28 do MNIST, e a última
linha confere o resultado: a tinta cabe numa caixa cujo lado maior tem 20 pixels, com o
centro de massa por volta de (14, 14).
""",
    ),
    code("""
fig = Figure(figsize=(2.1 * len(steps), 2.8))
axes = fig.subplots(1, len(steps))
for number, (ax, step) in enumerate(zip(axes, steps), start=1):
    ax.imshow(step.image, cmap="gray", vmin=0, vmax=1)  # scaled to the panel; its real size in the title
    height, width = step.image.shape
    ax.set_title(f"{number}. {step_title(step.name, LANG)}\\n{height} x {width}", fontsize=9)
    ax.axis("off")
axes[-1].plot(centre[1], centre[0], "r+", markersize=12)  # the centre of mass, at about (14, 14)
show(fig)
"""),
    md(
        en="""
The photo becomes an MNIST digit, image by image (each panel is scaled to fit; the numbers
under its title are the image's real size, rows × columns):

1. **decoded**: the file as `read_image_file` decoded it, shown as brightness. Before
   decoding it checked the file's size in bytes and the pixel count its header claims
   (a huge or corrupt file is refused with a one-line error); it applied the camera's
   rotation, and it would decode a big JPEG photo at reduced scale.
2. **gray**: one grayscale value per pixel in [0, 1] (`to_gray`). For this opaque photo it
   looks like panel 1; in an image with transparency, the transparent pixels are laid onto
   white here (or onto black when the ink itself is light), so either ink survives.
3. **polarity**: MNIST's digits are white ink on black, and this photo's border is light
   (paper), so the image is **inverted**. Just before, the paper's uneven lighting (here
   lighter on the right) is divided out region by region (`flatten_paper`), so a shadow does
   not pass for ink. A photo larger than 1024 pixels would also be shrunk here, keeping the
   darkest pixel of each block so that thin pen lines survive.
4. **contrast**: the background's level (the median of the border) is subtracted and the
   ink **stretched** so that its typical peak is 1; anything under 15% (paper grain, JPEG
   noise) becomes 0, and so does any isolated speck. The paper is now pure black.
5. **crop**: cut to the ink's bounding box: where the digit was on the page no longer matters.
6. **thickened**: shrunk to 20 pixels, a pen stroke on a big crop would end up much thinner
   than MNIST's, even under one pixel. So a large crop is first reduced with the *maximum*
   of each block (an average would fade a thin line), and strokes still too thin for the
   final scale are **dilated** to about MNIST's weight (2.5 pixels at 20 px). A thick marker
   stroke would pass unchanged.
7. **fit**: **resized** so that the longer side is **20 pixels**, keeping the proportions,
   with an anti-aliasing filter (Lanczos): the grey edges are the same ones MNIST's digits
   have.
8. **centred**: **pasted** into a 28 × 28 field so that the ink's **centre of mass** (the red
   cross) falls on pixel (14, 14), as the creators of MNIST did with their scans. This is
   the image the model sees.

The same steps run in `mnist-cnn predict`; with `--save-preprocessed DIR --steps` it writes
every one of them for each input as `DIR/<name>/NN-step.png`, to look at when a
prediction surprises you.
""",
        pt="""
A foto vira um dígito do MNIST, imagem por imagem (cada painel é ampliado ou reduzido para
caber; os números sob o título são o tamanho real da imagem, linhas × colunas):

1. **decodificada** (*decoded*): o arquivo como o `read_image_file` o decodificou, mostrado como
   brilho. Antes de decodificar, ele conferiu o tamanho do arquivo em bytes e o número de
   pixels que o cabeçalho declara (um arquivo enorme ou corrompido é recusado com um erro de
   uma linha); aplicou a rotação da câmera, e decodificaria uma foto JPEG grande em escala
   reduzida.
2. **tons de cinza** (*gray*): um valor de cinza por pixel, em [0, 1] (`to_gray`). Nesta foto
   opaca ela se parece com o painel 1; numa imagem com transparência, os pixels transparentes
   são postos aqui sobre branco (ou sobre preto quando a própria tinta é clara), para que
   qualquer tinta sobreviva.
3. **polaridade** (*polarity*): os dígitos do MNIST são tinta branca sobre preto, e a borda
   desta foto é clara (papel), então a imagem é **invertida**. Logo antes, a iluminação
   irregular do papel (aqui mais claro à direita) é compensada região por região
   (`flatten_paper`), para que uma sombra não passe por tinta. Uma foto com mais de 1024
   pixels também seria reduzida aqui, guardando o pixel mais escuro de cada bloco para que
   traços finos de caneta sobrevivam.
4. **contraste** (*contrast*): o nível do fundo (a mediana da borda) é subtraído e a tinta é
   **esticada** para que o seu pico típico valha 1; o que fica abaixo de 15% (grão do papel,
   ruído do JPEG) vira 0, e o mesmo acontece com qualquer pontinho isolado. O papel agora é
   preto puro.
5. **recorte** (*crop*): corte na caixa que envolve a tinta: onde o dígito estava na página
   deixa de importar.
6. **traço engrossado** (*thickened*): reduzido a 20 pixels, o traço de caneta de um recorte
   grande ficaria bem mais fino que os do MNIST, até menos de um pixel. Por isso um recorte
   grande é primeiro reduzido com o *máximo* de cada bloco (uma média apagaria uma linha
   fina), e os traços ainda finos demais para a escala final são **dilatados** até mais ou
   menos a espessura do MNIST (2,5 pixels a 20 px). O traço grosso de um marcador passaria
   sem mudança.
7. **caixa de 20 px** (*fit*): **redimensionado** para que o lado maior tenha **20 pixels**,
   mantendo as proporções, com um filtro anti-serrilhado (Lanczos): as bordas cinzentas são
   as mesmas que os dígitos do MNIST têm.
8. **centralizada** (*centred*): **colado** num campo de 28 × 28 de modo que o **centro de
   massa** da tinta (a cruz vermelha) caia no pixel (14, 14), como os criadores do MNIST
   fizeram com as suas digitalizações. Esta é a imagem que o modelo vê.

Os mesmos passos rodam no `mnist-cnn predict`; com `--save-preprocessed DIR --steps` ele grava
cada um deles, para cada entrada, como `DIR/<nome>/NN-passo.png`, para olhar quando uma
previsão surpreender você.
""",
    ),
    code("""
fig = Figure(figsize=(4.4, 2.6))
for ax, (name, image) in zip(fig.subplots(1, 2), [("A", naive), ("B", digit)]):  # A: naive resize, B: MNIST-style
    p = predict_probabilities(reloaded, model_input(image))[0]
    top3 = np.argsort(-p)[:3]
    print(f"{name}: " + ", ".join(f"{dataset.class_names[k]} {p[k]:.1%}" for k in top3))
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{name} -> {dataset.class_names[top3[0]]} ({p[top3[0]]:.0%})", fontsize=9)
    ax.axis("off")
show(fig)
"""),
    md(
        en="""
On the left (A), the tempting shortcut: the photo simply shrunk to 28 × 28. Dark ink on a light
background, a thin faint stroke, off-centre: nothing like what the network was trained on.
On the right (B), the result of the eight steps. `model_input` adds the batch and channel axes,
(28, 28) → (1, 28, 28, 1), and the model gives its three most probable classes for each
version (the title shows the first). The preprocessed digit should be read as a 7 with high
confidence (after a full run); the naive version gets a wrong answer, often a confident
one, because the network has never seen dark digits on a light background.
This is the most common reason why "my model gets 99% on MNIST but fails on my drawing":
not the model, the preprocessing. The command `mnist-cnn predict MODEL my_digit.png` does
exactly these steps.
""",
        pt="""
À esquerda (A), o atalho tentador: a foto simplesmente encolhida para 28 × 28. Tinta escura
sobre fundo claro, um traço fino e apagado, fora do centro: nada parecido com o que a rede
viu no treino. À direita (B), o resultado dos oito passos. `model_input` acrescenta os eixos de
lote e de canal, (28, 28) → (1, 28, 28, 1), e o modelo dá as suas três classes mais
prováveis para cada versão (o título mostra a primeira). O dígito pré-processado deve ser
lido como 7 com alta confiança (depois de uma execução completa); a versão ingênua recebe
uma resposta errada, muitas vezes com muita confiança, porque a rede nunca viu dígitos
escuros sobre fundo claro. Este é o motivo mais comum de "meu modelo acerta 99% no MNIST
mas erra o meu desenho": não é o modelo, é o pré-processamento. O comando
`mnist-cnn predict MODEL my_digit.png` faz exatamente esses passos.
""",
    ),
    code("""
from mnist_cnn.inference.shipped import resolve_model
from mnist_cnn.inference.numbers import read_number
from mnist_cnn.inference.predict import Predictor

shipped_digits = Predictor.from_path(resolve_model("mnist"))  # the pretrained MNIST model, with its refusal rule
picked = [3, 2, 1, 18, 4]  # five test digits, pasted side by side on one page with gaps: a number
page = np.zeros((40, 5 * 36), np.uint8)
for slot, index in enumerate(picked):
    page[6:34, 4 + 36 * slot: 32 + 36 * slot] = dataset.test_images[index]
reading = read_number(shipped_digits, 255 - page)  # dark ink on light paper, like a scan
print(reading.text, "|", "".join(dataset.class_names[labels[i]] for i in picked))
for found in reading.digits:  # class, probability and (x, y, width, height) in the page's pixels
    print(f"{found.class_name}  {found.probability:.1%}  {found.box}")

(refused,) = shipped_digits.predict([Path("my_garment.png")])
print(refused.accepted, refused.calibrated)  # refused.reason says why, in one (English) line
"""),
    md(
        en="""
Two things a single-digit reader cannot do, done by the package's pretrained MNIST model
(`resolve_model("mnist")`, a `strong` model):

- **A whole number.** `read_number` finds the ink once for the whole page, separates the
  digits by their connected strokes (merging a detached bar, cutting digits that touch
  where the model reads the pieces better than the whole), and sends each one through the
  same steps as above. It answers the string and, per digit, the class, the probability and
  the box in the page's pixels. On the command line: `mnist-cnn predict mnist page.png
  --number`; the API has `POST /read`, and the page a number mode.
- **"Not a digit".** A softmax always picks a class: show the digit model a T-shirt and it
  still says some digit, often with high probability. The shipped model carries a small
  calibrated rule (`acceptance.json`, fitted on training digits against Fashion-MNIST
  training images and scribbles, its threshold set on validation digits) that looks at how
  far the top class stands above the others, how much of the picture is ink, how wide the
  strokes are and how solid their core is (pen strokes are solid, photographed things
  keep their shading), plus a *writing score*: three tiny CNNs (`writing.keras`,
  trained by `mnist-cnn calibrate` on digits as people send them against photos, noise and
  doodles) whose mean says how much the input looks like handwriting at all; the garment drawing is `accepted: False`,
  with the reason in one line. Every answer of `predict --json`, the API and the page
  carries this flag.
""",
        pt="""
Duas coisas que um leitor de um dígito só não faz, feitas pelo modelo MNIST pré-treinado do
pacote (`resolve_model("mnist")`, um modelo `strong`):

- **Um número inteiro.** `read_number` encontra a tinta uma vez na página inteira, separa os
  dígitos pelos traços conectados (juntando uma barra solta, cortando dígitos que se tocam
  onde o modelo lê as partes melhor que o todo) e passa cada um pelos mesmos passos de
  antes. Ele responde a sequência e, para cada dígito, a classe, a probabilidade e a caixa
  em pixels da página. Na linha de comando: `mnist-cnn predict mnist pagina.png --number`; a
  API tem `POST /read`, e a página um modo número.
- **"Isto não é um dígito".** Uma softmax sempre escolhe uma classe: mostre uma camiseta ao
  modelo de dígitos e ele ainda diz algum dígito, muitas vezes com probabilidade alta. O
  modelo distribuído traz uma pequena regra calibrada (`acceptance.json`, ajustada em
  dígitos de treino contra imagens de treino do Fashion-MNIST e rabiscos, com o limiar
  definido em dígitos de validação) que olha quanto a classe do topo se destaca das outras,
  quanto da imagem é tinta, quão largos são os traços e quão sólido é o miolo deles (traços
  de caneta são sólidos; coisas fotografadas guardam o sombreado), e ainda uma *nota de
  escrita*: três CNNs minúsculas (`writing.keras`, treinadas pelo `mnist-cnn calibrate` em
  dígitos como as pessoas os enviam contra fotos, ruído e rabiscos), cuja média diz quanto a
  entrada parece escrita à mão; o
  desenho da peça sai `accepted: False`, com o motivo numa linha. Toda resposta de
  `predict --json`, da API e da página traz essa marca.
""",
    ),
    md(
        en="""
### 8.1 A number whose digits touch

People do not leave a gap between digits. When two digits touch, their ink is **one
connected piece**, and cutting it straight down goes through both digits wherever the cut
falls. So the shipped model comes with a second, small network, the **touching-digit
reader**, that reads such a piece whole. Below, three MNIST *test* digits are written the
way people write them (overlapping, slanted, on grainy paper), and we follow the reading:
the connected pieces of ink, the strip the reader sees, its answer column by column, and
the digits with their boxes.
""",
        pt="""
### 8.1 Um número cujos dígitos se tocam

As pessoas não deixam espaço entre os dígitos. Quando dois dígitos se tocam, a tinta deles é
**uma peça conectada só**, e um corte reto atravessa os dois dígitos onde quer que caia. Por
isso o modelo distribuído vem com uma segunda rede, pequena, o **leitor de dígitos que se
tocam**, que lê essa peça inteira. Abaixo, três dígitos de *teste* do MNIST são escritos como
as pessoas escrevem (sobrepostos, inclinados, em papel granulado), e acompanhamos a leitura: as
peças conectadas de tinta, a faixa que o leitor vê, a resposta dele coluna por coluna e os
dígitos com as suas caixas.
""",
    ),
    code("""
from scipy import ndimage

from mnist_cnn.data.compose import TOUCHING_GAP, compose_number
from mnist_cnn.inference.preprocess import find_ink
from mnist_cnn.inference.touching import BAND, strip_from_ink

chosen = [61, 0, 1]  # three test digits (an 8, a 7, a 2)
written = compose_number([dataset.test_images[i] for i in chosen], [int(labels[i]) for i in chosen],
                         np.random.default_rng(3), gap=TOUCHING_GAP)
ink, _ = find_ink(written.image / 255.0)  # the same first steps as for one digit
pieces, count = ndimage.label(ink > 0, structure=np.ones((3, 3)))  # 8-connected pieces of ink
strip, layout = strip_from_ink(ink)  # the reader's input: 28 x 112, the ink 20 px tall
bands = shipped_digits.touching_reader().probabilities(strip[np.newaxis])[0]  # (28 bands, 11 classes)
best = "".join("." if k == 0 else str(k - 1) for k in bands.argmax(axis=1))  # "." = no digit here
touching_reading = read_number(shipped_digits, written.image)
print(count, "|", best, "|", touching_reading.text, "|", "".join(map(str, written.labels)))
for found in touching_reading.digits:
    print(f"{found.class_name}  {found.probability:.1%}  {found.box}")
"""),
    md(
        en="""
The first line holds four answers, separated by `|`: how many connected pieces of ink the
number is made of, the reader's best class for each of its 28 bands (`.` = no digit
there), the number read, and the true digits. Then one line per digit: its class, its
probability and its box, `(x, y, width, height)` in the image's pixels. The figure below
shows the same steps.
""",
        pt="""
A primeira linha traz quatro respostas, separadas por `|`: de quantas peças conectadas de
tinta o número é feito, a melhor classe do leitor para cada uma das suas 28 bandas (`.` =
nenhum dígito ali), o número lido e os dígitos verdadeiros. Depois, uma linha por dígito: a
classe, a probabilidade e a caixa, `(x, y, largura, altura)` em pixels da imagem. A figura
abaixo mostra os mesmos passos.
""",
    ),
    code("""
from matplotlib.patches import Rectangle

fig = Figure(figsize=(10, 4.6))
grid = fig.add_gridspec(2, 4 + len(touching_reading.digits))
ax = fig.add_subplot(grid[0, :4])
ax.imshow(written.image, cmap="gray", vmin=0, vmax=255)
for found in touching_reading.digits:  # each digit's box, in the image's pixels
    x, y, w, h = found.box
    ax.add_patch(Rectangle((x, y), w, h, fill=False, color="tab:red", linewidth=1.5))
ax.set_title(f"1. {touching_reading.text}", fontsize=9)
ax = fig.add_subplot(grid[0, 4:])
ax.imshow(pieces, cmap="tab10", interpolation="nearest")
ax.set_title(f"2. {count}", fontsize=9)
ax = fig.add_subplot(grid[1, :4])
ax.imshow(strip, cmap="gray", vmin=0, vmax=1)
for band, label in enumerate(best):  # the reader's answer for each band of 4 columns
    if label != ".":
        ax.text(band * BAND + BAND / 2, 26, label, color="tab:orange", ha="center", fontsize=8)
ax.set_title("3. 28 x 112", fontsize=9)
for k, found in enumerate(touching_reading.digits):
    ax = fig.add_subplot(grid[1, 4 + k])
    ax.imshow(found.image, cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"4. {found.class_name}", fontsize=9)
for ax in fig.axes:
    ax.axis("off")
show(fig)
"""),
    md(
        en="""
Reading the printout and the figure, left to right:

1. **As written**: the first number printed is how many connected pieces of ink there are:
   one, so connected components alone would see a single, very wide "digit". The red boxes
   are the answer's boxes, one per digit.
2. **The pieces**, one colour each.
3. **The strip**: the piece, cropped and scaled so that its ink is 20 pixels tall, like
   an MNIST digit, in a 28 × 112 field. The reader is a small CNN that looks at the strip
   in **28 bands of 4 columns**, then a bidirectional GRU, a recurrent layer that carries
   what it saw along the strip both ways (whether a stroke is a 1 of its own or part of
   its neighbour can depend on bands further away); it scores, per band, "digit 0-9" or
   "nothing here". It was trained with **CTC** (Connectionist Temporal Classification, the loss of
   speech and handwriting recognisers): CTC sums over every way the true digits could be
   spread across the bands, so the training numbers need no boxes, only their digits. The
   second printed string is the best class per band (`.` = nothing): runs of one class
   are one digit. The reader was trained only on MNIST *training* digits composed into
   numbers like these (`mnist-cnn train-reader`); these are *test* digits.
4. **The digits**: the ink is cut at the column of least ink between two digits' centres,
   for the boxes and the small images; the classes come from the reader, which saw the
   digits uncut.

A group of ink that the reader reads as one digit is left whole for the digit model, so a
single wide digit (a slanted 2, a broad 0) is not split.
""",
        pt="""
Lendo a saída e a figura, da esquerda para a direita:

1. **Como foi escrito**: o primeiro número impresso é quantas peças conectadas de tinta
   existem: uma, então os componentes conectados sozinhos veriam um único "dígito" muito
   largo. As caixas vermelhas são as da resposta, uma por dígito.
2. **As peças**, uma cor para cada.
3. **A faixa**: a peça recortada e redimensionada para que a tinta tenha 20 pixels de altura,
   como um dígito do MNIST, num campo de 28 × 112. O leitor é uma CNN pequena que olha a
   faixa em **28 bandas de 4 colunas**, seguida de uma GRU bidirecional, uma camada
   recorrente que leva o que viu ao longo da faixa nos dois sentidos (se um traço é um 1
   sozinho ou parte do vizinho pode depender de bandas mais distantes); ele dá, para cada
   banda, a nota de "dígito 0-9" ou de "nada aqui". Ele foi treinado com **CTC** (*Connectionist Temporal
   Classification*, a perda dos reconhecedores de fala e de escrita à mão): a CTC soma todas
   as maneiras de distribuir os dígitos verdadeiros pelas bandas, então os números de treino
   não precisam de caixas, só dos seus dígitos. A segunda sequência impressa é a melhor
   classe por banda (`.` = nada): uma sequência de bandas da mesma classe é um dígito. O
   leitor foi treinado só com dígitos de *treino* do MNIST compostos em números como estes
   (`mnist-cnn train-reader`); estes são dígitos de *teste*.
4. **Os dígitos**: a tinta é cortada na coluna com menos tinta entre os centros de dois
   dígitos, para as caixas e as imagens pequenas; as classes vêm do leitor, que viu os
   dígitos sem corte.

Um grupo de tinta que o leitor lê como um dígito só fica inteiro para o modelo de dígitos,
então um dígito largo sozinho (um 2 inclinado, um 0 largo) não é cortado.
""",
    ),
    md(
        en="""
## 9. What the CNN sees

Three ways to look inside the trained network, all from the package's `explain` module.
""",
        pt="""
## 9. O que a CNN enxerga

Três maneiras de olhar dentro da rede treinada, todas do módulo `explain` do pacote.
""",
    ),
    code("""
from mnist_cnn.evaluation import explain

filters = explain.first_layer_filters(reloaded)
print(filters.shape)  # (height, width, filters)
show(explain.plot_filters(filters, lang=LANG))
"""),
    md(
        en="""
These are the 24 **filters of the first convolution**, each a 4 × 4 grid of learned weights
(red positive, blue negative). A filter responds strongly where the image under it looks
like it. At 4 × 4 pixels they look rough, and many mix several patterns, but look for these:
a red row above a blue row responds to a **horizontal edge** of a stroke, a red column
beside a blue one to a **vertical edge**, a diagonal of one colour to **slanted strokes**.
Nobody programmed these: they emerged from lowering the loss, and they resemble the edge
detectors found in the first stage of animal vision.
""",
        pt="""
Estes são os 24 **filtros da primeira convolução**, cada um uma grade 4 × 4 de pesos
aprendidos (vermelho positivo, azul negativo). Um filtro responde forte onde a imagem abaixo
dele se parece com ele. Com 4 × 4 pixels eles parecem grosseiros, e muitos misturam vários
padrões, mas procure estes: uma linha vermelha sobre uma azul responde a uma **borda
horizontal** de um traço, uma coluna vermelha ao lado de uma azul a uma **borda vertical**,
uma diagonal de uma só cor a **traços inclinados**. Ninguém programou isso: eles surgiram ao baixar a
perda, e lembram os detectores de bordas do primeiro estágio da visão dos animais.
""",
    ),
    code("""
maps = explain.feature_maps(reloaded, x_test[0])
for name, activation in maps:
    print(f"{name}: {activation.shape[-1]} x {activation.shape[0]}x{activation.shape[1]}")
print(f"{text('true', LANG)}: {dataset.class_names[labels[0]]}")
show(explain.plot_feature_maps(maps, max_channels=16, lang=LANG))
"""),
    md(
        en="""
The **feature maps** are what each convolution layer outputs for one test digit (here the
first test image), taken after its batch norm and ReLU, i.e. exactly what the next layer
receives; we show 16 of each layer's maps. In the first layer (14 × 14: its filters step two
pixels at a time) you can still recognise the digit: each map highlights the parts matching
one filter, such as the left edges of strokes, the top edges, the stroke itself. The second
layer's maps (14 × 14 too) are more abstract: they respond to combinations (a corner, the end
of a stroke, a curve in one place) rather than to single edges, and after pooling the third
layer's (7 × 7) mark only roughly *where* a larger part of the digit is. Deeper layers trade *where*
for *what*, which is how the network becomes robust to small changes in handwriting.
""",
        pt="""
Os **mapas de características** são o que cada camada de convolução produz para um dígito de
teste (aqui a primeira imagem de teste), tomados depois da sua batch norm e da ReLU, isto é,
exatamente o que a camada seguinte recebe; mostramos 16 mapas de cada camada. Na primeira
camada (14 × 14: os seus filtros andam de dois em dois pixels) ainda dá para reconhecer o
dígito: cada mapa destaca as partes que combinam com um filtro, como as bordas esquerdas dos
traços, as bordas de cima, o próprio traço. Os mapas da segunda camada (também 14 × 14) são
mais abstratos: respondem a combinações (um canto, a ponta de um traço, uma curva num certo
lugar) e não a bordas isoladas, e, depois do pooling, os da terceira (7 × 7) marcam só de
modo aproximado *onde* está uma parte maior do dígito. Camadas mais profundas trocam o *onde* pelo *o quê*, e é assim que a rede
fica robusta a pequenas variações da letra de cada um.
""",
    ),
    code("""
right = np.flatnonzero(predicted == labels)[:3]
wrong = np.flatnonzero(predicted != labels)[:3]
chosen = np.concatenate([right, wrong])
print(chosen.tolist(), f"({len(wrong)} x {text('wrong', LANG)})")
show(explain.plot_saliency(reloaded, x_test[chosen], labels[chosen], dataset.class_names, lang=LANG))
"""),
    md(
        en="""
A **saliency map** asks: which pixels, if changed a little, would change the score of the
predicted class the most? It is the gradient of that class's score (before the softmax)
with respect to each input pixel, computed with TensorFlow's automatic differentiation
(`tf.GradientTape`), averaged over a few slightly noisy copies of the image (SmoothGrad)
because single gradients are speckled. Bright means influential.

For correct predictions the bright pixels lie on and around the strokes that tell this
digit apart (the open top of a 4, the loop of a 6). For the **mistakes** (red titles) the
map shows what misled the network: often a stroke that really does look like part of the
wrong digit, or a gap where the right digit would need ink. Saliency is a hint about the
model's reasons, not a proof; it is most useful for spotting a model that looks at the
wrong thing (a border, a smudge).
""",
        pt="""
Um **mapa de saliência** pergunta: quais pixels, se mudados um pouco, mais mudariam a nota da
classe prevista? É o gradiente da nota dessa classe (antes do softmax) em relação a cada pixel
da entrada, calculado com a diferenciação automática do TensorFlow (`tf.GradientTape`) e
tirando a média sobre algumas cópias levemente ruidosas da imagem (SmoothGrad), porque
gradientes isolados são granulados. Claro quer dizer influente.

Nas previsões corretas, os pixels claros ficam sobre e em volta dos traços que distinguem o
dígito (o topo aberto de um 4, o laço de um 6). Nos **erros** (títulos em vermelho), o mapa
mostra o que enganou a rede: muitas vezes um traço que parece mesmo parte do dígito errado,
ou um vazio onde o dígito certo precisaria de tinta. A saliência é uma pista sobre as razões
do modelo, não uma prova; ela é mais útil para flagrar um modelo que olha para a coisa
errada (uma borda, uma mancha).
""",
    ),
    code("""
show(explain.explain_figure(reloaded, digit, dataset.class_names, title="my_digit.png", lang=LANG))
"""),
    md(
        en="""
Everything at once for *your* digit: the preprocessed input, the ten class probabilities,
the saliency of the predicted class over the digit, and eight feature maps of each
convolution layer. This is the picture `mnist-cnn explain` writes (next chapter). A model
without convolution layers (a plain dense network) gets the same picture with a note in
place of the feature maps.
""",
        pt="""
Tudo de uma vez para o *seu* dígito: a entrada pré-processada, as dez probabilidades, a
saliência da classe prevista sobre o dígito e oito mapas de características de cada camada
de convolução. É a figura que o `mnist-cnn explain` grava (próximo capítulo). Um modelo sem
camadas de convolução (uma rede densa simples) recebe a mesma figura com um aviso no lugar
dos mapas de características.
""",
    ),
    md(
        en="""
## 11. Next steps
""",
        pt="""
## 11. Próximos passos
""",
    ),
    code("""
from mnist_cnn.cli.main import main

exit_code = main(["explain", str(model_path), "my_digit.png", "-o", str(run_dir / "my_digit-explained.png"),
                  "--lang", LANG])
print(text("exit_code", LANG, code=exit_code))
"""),
    md(
        en="""
The command line does everything this notebook did; we just called it in-process (`main`
takes the same arguments as the shell command). In a terminal:

| notebook | command |
|---|---|
| chapters 0–5: load, prepare, build, compile, train | `mnist-cnn train` (add `--epochs`, `--model`, `--labels sparse`, `--seed`, ...) |
| chapter 6: metrics, confusion matrix, mistakes | `mnist-cnn evaluate runs/<run>/model.keras` |
| chapter 2: the architectures | `mnist-cnn models` |
| chapter 8: your own digit | `mnist-cnn predict runs/<run>/model.keras my_digit.png` |
| chapter 9: what the CNN sees | `mnist-cnn explain runs/<run>/model.keras my_digit.png -o explained.png` |

Every command has `--help` with an example. Things to try next:

- **Other models and recipes**: `mnist-cnn models` lists the architectures and the named
  recipes; train the seed's `keras-example` and compare its curves with `compact`'s.
  `mnist-cnn train --recipe fast` passes 99% in one short epoch (the image cropped to
  24 × 24, a first layer computed from the data and never trained, narrow layers, a high
  peak learning rate); `mnist-cnn train --recipe
  strong` trains a deeper model with augmentation (small shifts, rotations and zooms) for the
  best accuracy, much longer.
- **Fashion-MNIST** on your own: chapter 10 showed the way; on the command line,
  `mnist-cnn train --recipe strong --dataset fashion-mnist` trains the recipe's 20 epochs,
  and `--lang pt-BR` writes its report and figures in Portuguese.
- **Experiments**: sparse labels (1.2), no dropout, fewer filters, a smaller learning rate;
  predict what the curves (5.2) will do before you run it.
""",
        pt="""
A linha de comando faz tudo o que este notebook fez; aqui só a chamamos dentro do próprio
processo (`main` recebe os mesmos argumentos do comando no terminal). Num terminal:

| notebook | comando |
|---|---|
| capítulos 0 a 5: carregar, preparar, construir, compilar, treinar | `mnist-cnn train` (com `--epochs`, `--model`, `--labels sparse`, `--seed`, ...) |
| capítulo 6: métricas, matriz de confusão, erros | `mnist-cnn evaluate runs/<execução>/model.keras` |
| capítulo 2: as arquiteturas | `mnist-cnn models` |
| capítulo 8: o seu próprio dígito | `mnist-cnn predict runs/<execução>/model.keras my_digit.png` |
| capítulo 9: o que a CNN enxerga | `mnist-cnn explain runs/<execução>/model.keras my_digit.png -o explicado.png` |

Todo comando tem `--help` com um exemplo. O que experimentar em seguida:

- **Outros modelos e receitas**: `mnist-cnn models` lista as arquiteturas e as receitas com
  nome; treine o `keras-example` do notebook original e compare as curvas dele com as do
  `compact`. `mnist-cnn train --recipe fast` passa de 99% em uma só época curta (a imagem
  recortada para 24 × 24, uma primeira camada calculada a partir dos dados e nunca treinada,
  camadas estreitas, uma taxa de aprendizado de pico alta); `mnist-cnn train --recipe strong` treina um modelo mais profundo com aumento de dados (pequenos deslocamentos,
  rotações e zooms) para a melhor acurácia, por muito mais tempo.
- **Fashion-MNIST** por conta própria: o capítulo 10 mostrou o caminho; na linha de comando,
  `mnist-cnn train --recipe strong --dataset fashion-mnist --lang pt-BR` treina as 20 épocas
  da receita e escreve o relatório e as figuras em português.
- **Experimentos**: rótulos esparsos (1.2), sem dropout, menos filtros, uma taxa de
  aprendizado menor; tente prever o que as curvas (5.2) vão fazer antes de executar.
""",
    ),
]


def _assemble(cells: list[dict]) -> list[dict]:
    """Close each chapter with its exercises and put the Fashion-MNIST chapter before the last one."""
    out: list[dict] = []
    for cell in cells:
        heading = cell.get("en", "").lstrip().split("\n", 1)[0] if cell["type"] == "markdown" else ""
        if heading.startswith("## ") and heading[3:].split(".")[0].isdigit():
            chapter = int(heading[3:].split(".")[0])
            if chapter == 11:
                out += EXERCISES["9"] + FASHION_CHAPTER
            out += EXERCISES.get(str(chapter - 1), []) if chapter != 11 else EXERCISES["10"]
        out.append(cell)
    return out + EXERCISES["11"]


CELLS = _assemble(CELLS)
