"""The tutorial's exercises: chapter number -> the exercise cells that close that chapter.

Each is a question, a solution stored collapsed (try first, then unfold it) and a note on
what the solution shows. Solutions use only names the chapters defined and run in the
tests' quick mode, so none goes stale. Part of `tutorial_cells`.
"""

from __future__ import annotations

from tutorial_blocks import exercise

EXERCISES: dict[str, list[dict]] = {
    "0": exercise(
        en="Which digit is the rarest in the training set, and how much rarer than the commonest one?",
        pt="Qual dígito é o mais raro no conjunto de treino, e quão mais raro que o mais comum?",
        solution="""
counts = np.bincount(dataset.train_labels, minlength=dataset.num_classes)
rarest, commonest = int(counts.argmin()), int(counts.argmax())
print(dataset.class_names[rarest], counts[rarest], "|", dataset.class_names[commonest], counts[commonest],
      f"| {counts[commonest] / counts[rarest]:.2f}x")
""",
        en_after="""
`np.bincount` counts each label. In MNIST's training set the 5 is the rarest (5,421) and
the 1 the commonest (6,742), about 1.24 times more: a mild imbalance, so plain accuracy
still means something and the stratified validation split keeps these proportions.
""",
        pt_after="""
`np.bincount` conta cada rótulo. No treino do MNIST o 5 é o mais raro (5.421) e o 1 o mais
comum (6.742), cerca de 1,24 vez mais: um desequilíbrio leve, então a acurácia simples ainda
diz algo, e a separação estratificada de validação mantém essas proporções.
""",
    ),
    "1": exercise(
        en="""Normalise the test images by hand and check the result equals `normalize`'s. How
much more memory do the float images take than the bytes?""",
        pt="""Normalize as imagens de teste à mão e confira que o resultado é igual ao de
`normalize`. Quanto mais memória as imagens em float ocupam que os bytes?""",
        solution="""
by_hand = (dataset.test_images.astype(np.float32) / 255.0)[..., np.newaxis]  # (N, 28, 28) -> (N, 28, 28, 1)
print(np.array_equal(by_hand, x_test), f"{x_test.nbytes / dataset.test_images.nbytes:.0f}x",
      f"({x_test.nbytes / 1e6:.1f} MB / {dataset.test_images.nbytes / 1e6:.1f} MB)")
""",
        en_after="""
Equal to the bit: `normalize` is exactly "divide by 255, add a channel axis". A float32
takes 4 bytes where a pixel took 1, so the normalised images need 4 times the memory; this
is why the package keeps the raw bytes in memory and normalises when it needs to.
""",
        pt_after="""
Iguais bit a bit: `normalize` é exatamente "dividir por 255 e acrescentar um eixo de canal".
Um float32 ocupa 4 bytes onde um pixel ocupava 1, então as imagens normalizadas precisam de
4 vezes a memória; por isso o pacote guarda os bytes crus e normaliza quando precisa.
""",
    ) + exercise(
        en="Turn one-hot labels back into class numbers. Which NumPy call undoes the encoding?",
        pt="Transforme rótulos one-hot de volta em números de classe. Qual chamada do NumPy desfaz a codificação?",
        solution="""
onehot = encode_labels(dataset.train_labels[:20], dataset.num_classes, "onehot")
print(onehot.argmax(axis=1))
print(np.array_equal(onehot.argmax(axis=1), dataset.train_labels[:20]))
""",
        en_after="""
`argmax` along the class axis gives the position of the 1 in each row: the label. The same
call turns the model's probabilities into predictions in chapter 6.
""",
        pt_after="""
`argmax` no eixo das classes dá a posição do 1 em cada linha: o rótulo. A mesma chamada
transforma as probabilidades do modelo em previsões no capítulo 6.
""",
    ),
    "2": exercise(
        en="""Build the other registered models and compare their parameter counts with ours.
Which single layer of our model holds the most parameters?""",
        pt="""Construa os outros modelos registrados e compare o número de parâmetros com o do
nosso. Qual camada do nosso modelo tem mais parâmetros?""",
        solution="""
for name in MODELS:
    print(f"{name:14} {build_model(name, dataset.num_classes).count_params():>9,}")
biggest = max(model.layers, key=lambda layer: layer.count_params())
print(biggest.name, f"{biggest.count_params():,}")
""",
        en_after="""
A convolution's parameters depend on its kernel and channels (3 × 3 × 32 inputs × 64
outputs for the third stage), not on the image size; the dense classifier's depend on how
many numbers reach it (3,136 × 10). In `compact` the classifier is the largest layer, the
third convolution next; `cnn`, the default before it, works on the full 28 × 28 image first
and ends wider (6,272 numbers reach its classifier).
""",
        pt_after="""
Os parâmetros de uma convolução dependem do kernel e dos canais (3 × 3 × 32 entradas × 64
saídas no terceiro estágio), não do tamanho da imagem; os do classificador denso dependem
de quantos números chegam a ele (3.136 × 10). No `compact` o classificador é a maior camada,
a terceira convolução vem logo atrás; o `cnn`, o padrão antes dele, trabalha primeiro na
imagem inteira de 28 × 28 e termina mais largo (6.272 números chegam ao classificador).
""",
    ),
    "3": exercise(
        en="What is the learning rate at the start, at the end of the warm-up and at the very end?",
        pt="Qual é a taxa de aprendizado no início, no fim do aquecimento e no fim de tudo?",
        solution="""
warmup = min(int(config.warmup_epochs * steps), total // 4)
print(f"{float(schedule(0)):.5f} -> {float(schedule(warmup)):.5f} (step {warmup}) -> {float(schedule(total)):.5f}")
""",
        en_after="""
The schedule starts at a twentieth of the peak, climbs linearly to the peak during the
warm-up (large early steps on random weights would be wasted or harmful), then follows a
cosine down to 0 at the last step: the final steps are small, which settles the weights.
""",
        pt_after="""
A programação começa em um vigésimo do pico, sobe em linha reta até o pico durante o
aquecimento (passos grandes no início, com pesos aleatórios, seriam desperdiçados ou
nocivos) e depois segue um cosseno até 0 no último passo: os passos finais são pequenos, o
que acomoda os pesos.
""",
    ),
    "4": exercise(
        en="""Without reading `history.csv`: which epoch did training keep, and where is its
checkpoint? (Hint: the run's resume state.)""",
        pt="""Sem ler o `history.csv`: que época o treino guardou, e onde está o checkpoint dela?
(Dica: o estado de retomada da execução.)""",
        solution="""
state = Run(run_dir).read_state()
print(f"{state.epoch} / {state.best_epoch} / {state.best_val_loss:.4f} / {state.best_checkpoint}")
""",
        en_after="""
`state.json` is written after every epoch: how many epochs are done, the best one (lowest
validation loss) and the checkpoint files. It is what `mnist-cnn train --resume` reads, and
`model.keras` holds the weights of that best epoch.
""",
        pt_after="""
O `state.json` é gravado após cada época: quantas épocas terminaram, a melhor (menor perda de
validação) e os arquivos de checkpoint. É o que `mnist-cnn train --resume` lê, e o
`model.keras` guarda os pesos dessa melhor época.
""",
    ),
    "5": exercise(
        en="""At the best epoch, how far apart are the training and validation accuracy? What
would a large gap mean?""",
        pt="""Na melhor época, qual a distância entre a acurácia de treino e a de validação? O que
uma distância grande significaria?""",
        solution="""
history = Run(run_dir).read_history()
best = min(history, key=lambda row: row["val_loss"])
print(f"{best['accuracy']:.4f} - {best['val_accuracy']:.4f} = {best['accuracy'] - best['val_accuracy']:+.4f}")
""",
        en_after="""
A training accuracy well above the validation accuracy means the model memorises its
training images (overfitting); here the two are close. Note that the training accuracy is
measured *during* the epoch, with dropout on, so it can even sit below the validation one.
""",
        pt_after="""
Uma acurácia de treino bem acima da de validação indica que o modelo decora as imagens de
treino (sobreajuste); aqui as duas estão próximas. Repare que a acurácia de treino é medida
*durante* a época, com o dropout ligado, então pode até ficar abaixo da de validação.
""",
    ),
    "6": exercise(
        en="Find the five test images the model is least sure about and look at them.",
        pt="Encontre as cinco imagens de teste sobre as quais o modelo tem menos certeza e olhe para elas.",
        solution="""
unsure = np.argsort(probabilities.max(axis=1))[:5]
fig = Figure(figsize=(7, 1.9))
for ax, i in zip(fig.subplots(1, 5), unsure):
    ax.imshow(dataset.test_images[i], cmap="gray")
    ax.set_title(f"{labels[i]} -> {predicted[i]} ({probabilities[i].max():.0%})", fontsize=9)
    ax.axis("off")
show(fig)
""",
        en_after="""
The lowest top probabilities point at the genuinely ambiguous digits: a 4 that could be a
9, a 7 with a hook. Sorting by confidence is a cheap way to find the pictures worth a
human look, and the mistakes are usually among them.
""",
        pt_after="""
As menores probabilidades máximas apontam os dígitos de fato ambíguos: um 4 que poderia ser
9, um 7 com gancho. Ordenar pela confiança é um jeito barato de achar as imagens que merecem
um olhar humano, e os erros costumam estar entre elas.
""",
    ),
    "7": exercise(
        en="What is inside a `.keras` file? List its members and their sizes.",
        pt="O que há dentro de um arquivo `.keras`? Liste os membros e os tamanhos.",
        solution="""
import zipfile

with zipfile.ZipFile(model_path) as archive:
    for member in archive.infolist():
        print(f"{member.filename:22} {member.file_size:>10,}")
""",
        en_after="""
A `.keras` file is a zip: `config.json` (the architecture, layer by layer), `metadata.json`
(Keras version, date) and `model.weights.h5` (every weight, plus the optimizer's state).
Safe mode refuses configs that would run pickled code, and the package refuses a zip whose
members would unpack to more than a model can be.
""",
        pt_after="""
Um `.keras` é um zip: `config.json` (a arquitetura, camada a camada), `metadata.json`
(versão do Keras, data) e `model.weights.h5` (todos os pesos, mais o estado do otimizador).
O modo seguro recusa configurações que executariam código serializado, e o pacote recusa um
zip cujos membros descompactariam para mais do que um modelo pode ter.
""",
    ),
    "8": exercise(
        en="Run the photo through Fashion-MNIST's recipe instead of MNIST's. Which steps differ?",
        pt="Passe a foto pela receita do Fashion-MNIST em vez da do MNIST. Quais passos mudam?",
        solution="""
fashion_style = preprocess_steps(photo, style="fashion")
print([step_title(step.name, LANG) for step in fashion_style])
fig = Figure(figsize=(4.4, 2.4))
for ax, (name, image) in zip(fig.subplots(1, 2), [("MNIST", digit), ("Fashion-MNIST", fashion_style[-1].image)]):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(name, fontsize=9)
    ax.axis("off")
show(fig)
""",
        en_after="""
The clothes recipe has no contrast stretch, no stroke thickening and no 20-pixel box: it
scales the longer edge to all 28 pixels and centres the outline. The digit comes out
bigger and thinner, the way a Fashion-MNIST model expects an item to look; a digit model
fed this would see something unlike its training digits.
""",
        pt_after="""
A receita das roupas não estica o contraste, não engrossa traços e não usa a caixa de 20
pixels: leva o lado maior aos 28 pixels e centraliza o contorno. O dígito sai maior e mais
fino, como um modelo de Fashion-MNIST espera ver uma peça; um modelo de dígitos que
recebesse isto veria algo diferente dos dígitos do treino.
""",
    ),
    "9": exercise(
        en="Show the feature maps of a test digit the model got wrong. Do they look different?",
        pt="Mostre os mapas de ativação de um dígito de teste que o modelo errou. Eles parecem diferentes?",
        solution="""
if len(wrong):
    i = int(wrong[0])
    print(f"{text('true', LANG)} {labels[i]}, {text('predicted', LANG)} {predicted[i]}")
    show(explain.plot_feature_maps(explain.feature_maps(reloaded, x_test[i]), max_channels=8, lang=LANG))
""",
        en_after="""
The first layer's maps still trace the strokes faithfully: edges are edges. The difference
is in the deeper maps, where the combination of parts the network learned for the true
class is weak or matches another class better. Mistakes are made late, from parts that
were seen correctly.
""",
        pt_after="""
Os mapas da primeira camada ainda seguem fielmente os traços: bordas são bordas. A
diferença está nos mapas mais profundos, onde a combinação de partes que a rede aprendeu
para a classe verdadeira fica fraca ou combina melhor com outra classe. Os erros acontecem
tarde, a partir de partes que foram vistas corretamente.
""",
    ),
    "10": exercise(
        en="Which pair of Fashion-MNIST classes does the model confuse most, and in which direction?",
        pt="Qual par de classes do Fashion-MNIST o modelo mais confunde, e em que direção?",
        solution="""
confusion = np.array(fashion_test["confusion_matrix"])
np.fill_diagonal(confusion, 0)  # keep only the mistakes
true_class, predicted_class = np.unravel_index(confusion.argmax(), confusion.shape)
print(class_label(fashion.class_names[true_class], LANG), "->", class_label(fashion.class_names[predicted_class], LANG),
      confusion[true_class, predicted_class])
""",
        en_after="""
Zeroing the diagonal leaves only mistakes; the largest cell is the most frequent one. After
a full run it is almost always a Shirt taken for a T-shirt/top (or the reverse): the pair
the per-class F1 already pointed at.
""",
        pt_after="""
Zerar a diagonal deixa só os erros; a maior célula é o erro mais frequente. Depois de uma
execução completa ele é quase sempre uma camisa tomada por camiseta/top (ou o contrário): o
par que o F1 por classe já apontava.
""",
    ),
    "11": exercise(
        en="Print Fashion-MNIST's dataset card in this notebook's language from the command line, in-process.",
        pt="Imprima o cartão do conjunto Fashion-MNIST no idioma deste notebook pela linha de comando, no próprio processo.",
        solution="""
exit_code = main(["data", "info", "fashion-mnist", "--lang", LANG])
""",
        en_after="""
Every command takes the same `--lang` as the library's functions, so what the command line
prints matches this notebook's figures and summaries. The first line names the folder the
files were read (and verified) from.
""",
        pt_after="""
Todo comando aceita o mesmo `--lang` das funções da biblioteca, então o que a linha de
comando imprime combina com as figuras e resumos deste notebook. A primeira linha indica a
pasta de onde os arquivos foram lidos (e verificados).
""",
    ),
}
