from datagen.cli.app import main

main()
