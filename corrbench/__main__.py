from corrbench.cli.app import main

main()
