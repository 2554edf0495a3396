"""Chapter 10 of the tutorial: the same pipeline on clothes (Fashion-MNIST). Part of `tutorial_cells`."""

from __future__ import annotations

from tutorial_blocks import code, md

FASHION_CHAPTER: list[dict] = [
    md(
        en="""
## 10. The same pipeline on clothes: Fashion-MNIST

The seed notebook names a second dataset: **Fashion-MNIST**, made by Zalando as a drop-in
replacement for MNIST. Same shape (28 × 28 grey images, 60,000 for training and 10,000 for
testing, 10 classes), same files, same loader, but the pictures are product photos of
clothes, shoes and bags. Nothing in the code below is new: the same calls, with
`"fashion-mnist"` where we wrote `"mnist"`. What changes is what the numbers tell us.
""",
        pt="""
## 10. O mesmo caminho com roupas: Fashion-MNIST

O notebook de origem cita um segundo conjunto: o **Fashion-MNIST**, criado pela Zalando
para substituir o MNIST sem mudar nada no código. Mesmo formato (imagens cinzentas de
28 × 28, 60.000 para treino e 10.000 para teste, 10 classes), mesmos arquivos, mesmo
carregador, mas as imagens são fotos de produtos: roupas, calçados e bolsas. Nada no código
abaixo é novo: as mesmas chamadas, com `"fashion-mnist"` onde escrevemos `"mnist"`. O que
muda é o que os números nos contam.
""",
    ),
    code("""
from mnist_cnn.data.cards import card_lines, dataset_card

fashion = load_dataset("fashion-mnist")
if QUICK:
    fashion = dataclasses.replace(fashion, test_images=fashion.test_images[:1000],
                                  test_labels=fashion.test_labels[:1000])
print("\\n".join(card_lines(dataset_card(fashion), LANG)[1:3]))  # line 0 names this machine's folder
fig = Figure(figsize=(11, 1.7))
for label, ax in enumerate(fig.subplots(1, 10)):
    ax.imshow(fashion.train_images[np.flatnonzero(fashion.train_labels == label)[0]], cmap="gray")
    ax.set_title(class_label(fashion.class_names[label], LANG), fontsize=8)
    ax.axis("off")
show(fig)
"""),
    md(
        en="""
One example of each class. Two differences from digits matter for everything that follows:

- the item **fills the frame** and is centred by its outline (Zalando trimmed each photo to
  the item and scaled its longer edge to 28 pixels), where a digit sits in a 20-pixel box
  centred by its ink's centre of mass;
- the **grey levels carry information**: a knit texture, a print, the sole of a sneaker.
  MNIST is almost black and white. The pixel mean above (about 73 of 255) is higher than
  MNIST's (about 33): clothes cover more of the picture.

And look at the first five classes: T-shirt/top, Trouser, Pullover, Dress, Coat. Three of
them (and Shirt, class 6) are upper-body garments photographed the same way.
""",
        pt="""
Um exemplo de cada classe. Duas diferenças em relação aos dígitos importam para tudo o que
vem depois:

- a peça **ocupa o quadro** e é centralizada pelo contorno (a Zalando recortou cada foto na
  peça e ajustou o lado maior para 28 pixels), enquanto um dígito fica numa caixa de 20
  pixels centralizada pelo centro de massa da tinta;
- os **tons de cinza carregam informação**: a textura de uma malha, uma estampa, a sola de
  um tênis. O MNIST é quase preto e branco. A média dos pixels acima (cerca de 73 de 255) é
  maior que a do MNIST (cerca de 33): roupas cobrem mais da imagem.

E veja as cinco primeiras classes: camiseta/top, calça, pulôver, vestido, casaco. Três delas
(e a camisa, classe 6) são peças de cima fotografadas do mesmo jeito.
""",
    ),
    code("""
fashion_config = resolve_config("strong", overrides={
    "dataset": "fashion-mnist", "lang": LANG, **({"epochs": 1, "train_limit": 3000} if QUICK else {"epochs": 6})})
print({key: value for key, value in fashion_config.to_dict().items()
       if key.startswith("aug") or key in ("model", "epochs", "label_smoothing")})
fashion_dir = Run.create(default_runs_dir(), fashion_config.dataset, fashion_config.model).path
fashion_result = train(fashion_config, fashion, fashion_dir, verbose=0)
print("\\n".join(results_lines(fashion_result.metrics, LANG)))
"""),
    md(
        en="""
We trained with the package's `strong` recipe, which knows this dataset: the deeper
`strong` model, label smoothing, and augmentation of the training images chosen for
clothes: **left-right flips**, shifts and **random erasing**, but no rotation or zoom (a
photographed garment is upright and framed). The full run trains 6 epochs (the recipe's 20
would take a quarter of an hour on a laptop CPU; quick mode 1 epoch on 3,000 images).

Expect about 91-92% test accuracy after 6 epochs where the same kind of network gets
99%+ on digits. That gap is not a bug: some clothes are genuinely ambiguous at 28 × 28, as
the next cell shows.
""",
        pt="""
Treinamos com a receita `strong` do pacote, que conhece este conjunto: o modelo `strong`,
mais profundo, suavização de rótulos e um aumento de dados das imagens de treino escolhido
para roupas: **espelhamento horizontal**, deslocamentos e **apagamento aleatório** (random
erasing), mas sem rotação nem zoom (uma peça fotografada está em pé e enquadrada). A
execução completa treina 6 épocas (as 20 da receita levariam um quarto de hora na CPU de
um notebook; o modo rápido, 1 época com 3.000 imagens).

Espere cerca de 91-92% de acurácia de teste após 6 épocas, onde o mesmo tipo de rede passa
de 99% nos dígitos. Essa diferença não é um defeito: algumas roupas são ambíguas de verdade
em 28 × 28, como mostra a próxima célula.
""",
    ),
    code("""
fashion_test = fashion_result.metrics["test"]
for name, row in sorted(fashion_test["per_class"].items(), key=lambda item: item[1]["f1"]):
    print(f"{name:>12}  F1 {row['f1']:.3f}")
display(Image(filename=fashion_dir / "confusion_matrix.png", width=560))
display(Image(filename=fashion_dir / "misclassified.png", width=560))
"""),
    md(
        en="""
Read the per-class F1 from the bottom up and the confusion matrix row by row, and a story
appears:

- **Trouser, Bag, Sandal, Sneaker, Ankle boot** are nearly solved: their outlines are
  unlike anything else (two legs; a handle; a sole).
- **Shirt** is by far the worst class, and its row of the confusion matrix says why: shirts
  are taken for **T-shirt/top**, **Pullover** and **Coat**, and those are taken for shirts.
  At 28 × 28 in grey, a button placket or a collar is a few pixels; what is left is "an
  upper-body garment with sleeves". Many of the "most confident mistakes" are pictures a
  person would hesitate on too, and some are arguably mislabelled.
- **Pullover vs Coat** is the second knot: long sleeves, similar outlines.

This is why the per-class F1 tells more than the accuracy: one number of ~91% hides a
class at ~70% and five near 99%. If your application cared about shirts, you would now
know where to look (more data of that class, higher resolution), not just that "accuracy
is lower".
""",
        pt="""
Leia o F1 por classe de baixo para cima e a matriz de confusão linha a linha, e uma
história aparece:

- **calça (Trouser), bolsa (Bag), sandália (Sandal), tênis (Sneaker) e bota (Ankle boot)**
  estão quase resolvidas: os contornos não se parecem com nada mais (duas pernas; uma alça;
  uma sola).
- **camisa (Shirt)** é de longe a pior classe, e a linha dela na matriz de confusão diz por
  quê: camisas são tomadas por **camiseta/top (T-shirt/top)**, **pulôver (Pullover)** e
  **casaco (Coat)**, e essas por camisas. Em 28 × 28 e em cinza, uma carcela de botões ou
  uma gola são poucos pixels; o que sobra é "uma peça de cima com mangas". Muitos dos "erros
  mais confiantes" são imagens em que uma pessoa também hesitaria, e algumas provavelmente
  têm o rótulo errado.
- **pulôver contra casaco** é o segundo nó: mangas compridas, contornos parecidos.

Por isso o F1 por classe diz mais que a acurácia: um número de ~91% esconde uma classe em
~70% e cinco perto de 99%. Se a sua aplicação se importasse com camisas, você saberia onde
olhar (mais dados dessa classe, mais resolução), e não só que "a acurácia é menor".
""",
    ),
    code("""
from mnist_cnn.training.train import augmenter

shirt = fashion.train_images[np.flatnonzero(fashion.train_labels == 6)[0]]
two = dataset.train_images[np.flatnonzero(dataset.train_labels == 2)[0]]
flip_and_erase = augmenter(resolve_config(overrides={
    "augment": True, "aug_flip": True, "aug_erasing": 1.0, "aug_shift": 0.0, "aug_rotation_deg": 0.0,
    "aug_zoom": 0.0, "seed": 3}))
batch = (np.stack([shirt, two] * 4).astype(np.float32) / 255)[..., np.newaxis]  # (8, 28, 28, 1)
augmented = np.asarray(flip_and_erase(batch, training=True))[..., 0]
fig = Figure(figsize=(8, 3.4))
axes = fig.subplots(2, 5)
for row, original in enumerate((shirt, two)):
    axes[row, 0].imshow(original, cmap="gray")
    for col in range(1, 5):
        axes[row, col].imshow(augmented[2 * (col - 1) + row], cmap="gray", vmin=0, vmax=1)
for ax in axes.ravel():
    ax.axis("off")
show(fig)
"""),
    md(
        en="""
The first column is the original; the other four are what training would see after the
`strong` recipe's flip (half the time) and erasing (here always on, to see it). Ask of each
picture: *is it still the same class?*

- A **mirrored shirt is still a shirt**: clothes are roughly symmetric and a left-facing
  sleeve is as likely as a right-facing one, so flips double the variety of training
  pictures for free. A **mirrored 2 is not a 2** (it is nothing, or a badly written 5 or S),
  so flips would teach the digit model wrong answers; the recipe never flips digits.
- **Erasing** a rectangle hides part of the garment: the model must recognise a shirt
  without seeing its collar, which discourages leaning on one detail. On a digit, erasing a
  stroke can change the class (an 8 without its upper loop is a 6, a 7 without its bar a
  1), so the recipe erases only clothes.

Augmentation is a statement about what does *not* change the class. Get it wrong and the
model learns the wrong thing; get it right and it learns from many more pictures than you
have.
""",
        pt="""
A primeira coluna é a original; as outras quatro são o que o treino veria depois do
espelhamento da receita `strong` (metade das vezes) e do apagamento (aqui sempre ligado,
para ver). Pergunte de cada imagem: *ela ainda é da mesma classe?*

- Uma **camisa espelhada ainda é uma camisa**: roupas são mais ou menos simétricas e uma
  manga virada para a esquerda é tão provável quanto uma para a direita, então o
  espelhamento dobra a variedade das imagens de treino de graça. Um **2 espelhado não é um
  2** (não é nada, ou um 5 ou S mal escrito), então espelhar ensinaria respostas erradas ao
  modelo de dígitos; a receita nunca espelha dígitos.
- **Apagar** um retângulo esconde parte da peça: o modelo precisa reconhecer uma camisa sem
  ver a gola, o que desencoraja depender de um só detalhe. Num dígito, apagar um traço pode
  mudar a classe (um 8 sem a volta de cima vira 6, um 7 sem a barra vira 1), por isso a
  receita só apaga roupas.

O aumento de dados é uma afirmação sobre o que *não* muda a classe. Errando, o modelo
aprende a coisa errada; acertando, ele aprende com muito mais imagens do que você tem.
""",
    ),
    code("""
from mnist_cnn.inference.shipped import resolve_model
from mnist_cnn.inference.predict import Predictor
from mnist_cnn.inference.preprocess import preprocess_steps

shipped = Predictor.from_path(resolve_model("fashion-mnist"))  # the pretrained model that ships with the package
(answer,) = shipped.predict([Path("my_garment.png")], top_k=3)
print(f"{text('accuracy', LANG)} ({shipped.info.dataset}): {shipped.info.test_metrics['accuracy']:.2%}")
print(", ".join(f"{top['class']} {top['probability']:.1%}" for top in answer.top))
garment_steps = preprocess_steps(read_image_file(Path("my_garment.png")), style=shipped.style)
fig = Figure(figsize=(2.2 * len(garment_steps), 2.6))
for number, (ax, step) in enumerate(zip(fig.subplots(1, len(garment_steps)), garment_steps), start=1):
    ax.imshow(step.image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{number}. {step_title(step.name, LANG)}", fontsize=9)
    ax.axis("off")
show(fig)
"""),
    md(
        en="""
The package ships a pretrained Fashion-MNIST model (`resolve_model("fashion-mnist")`; on
the command line, `mnist-cnn predict fashion-mnist photo.jpg`), and its run records which
dataset it learned, so `Predictor` prepares the picture with **Zalando's recipe** instead
of MNIST's: trim the photo to the item, scale its longer edge to 28 pixels, centre it by
its outline, negate it so the garment is light on black. No stroke thickening, no 20-pixel
box, no centre of mass: those steps belong to digits.

`my_garment.png` is a drawing standing in for a photo (no real photo ships with the
repository): a navy T-shirt on a light floor. Put a photo of your own garment in its place,
shot from above on a plain background, and rerun the cell. You will see how much the
answer depends on the photo looking like Zalando's: flat, centred, one item, plain
background. A T-shirt photographed on a patterned bedspread is a much harder picture.
""",
        pt="""
O pacote traz um modelo pré-treinado de Fashion-MNIST (`resolve_model("fashion-mnist")`; na
linha de comando, `mnist-cnn predict fashion-mnist foto.jpg`), e a execução dele registra em
que conjunto ele aprendeu, então o `Predictor` prepara a imagem com a **receita da
Zalando** em vez da do MNIST: recortar a foto na peça, ajustar o lado maior para 28 pixels,
centralizar pelo contorno, inverter para que a peça fique clara sobre o preto. Sem engrossar
traços, sem caixa de 20 pixels, sem centro de massa: esses passos são dos dígitos.

`my_garment.png` é um desenho no lugar de uma foto (nenhuma foto real acompanha o
repositório): uma camiseta azul-marinho sobre um chão claro. Coloque no lugar uma foto de
uma peça sua, tirada de cima sobre um fundo liso, e rode a célula de novo. Você verá o
quanto a resposta depende de a foto se parecer com as da Zalando: plana, centrada, uma peça
só, fundo liso. Uma camiseta fotografada sobre uma colcha estampada é uma imagem bem mais
difícil.
""",
    ),
]
